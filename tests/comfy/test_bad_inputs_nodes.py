"""Careless input to the nodes, in-process on the real host: each case stops with a short message naming the
input before any work starts, and nothing the user saved is overwritten (docs/BAD_INPUTS.md lists them)."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import hosttools as H
from test_nodes import _inject_kwargs, _sample_kwargs, _save_tiny, _source

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def tracker_file(tmp_path_factory):
    return _save_tiny(tmp_path_factory.mktemp("trk") / "tiny_tracker.safetensors", "tracker")


@pytest.fixture(scope="module")
def feats(pack, tracker_file):
    tracker = pack.nodes.tracker.load_tracker(str(tracker_file), "tiny")
    return pack.nodes.extract.ExtractMotionFeatures.execute(source=_source(), layers="all", steps=2, seed=0, cfg=1.0,
                                                            tracker=tracker).args[0]


@pytest.fixture
def out_dir(tmp_path, monkeypatch):
    import folder_paths

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path))
    return tmp_path / "moaw_features"


# ---- layer specs -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["block.0-1000000", "block.0-" + "9" * 40, "block." + "7" * 5000, "x" * 100_000])
def test_absurd_layer_specs_give_short_messages(pack, feats, spec):
    with pytest.raises(ValueError) as err:
        pack.nodes.select.SelectLayers.execute(features=feats, layers=spec)
    assert len(str(err.value)) < 400, str(err.value)[:500]
    assert "block.0" in str(err.value) or "characters long" in str(err.value)  # says what exists


# ---- injection settings ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,match", [
    ("strength", math.nan, "strength must be a finite number"),
    ("strength", math.inf, "strength must be a finite number"),
    ("start", math.nan, "start must be a finite number"),
    ("start", 0.6, "window is empty"),
])
def test_inject_settings_refused(pack, feats, field, value, match):
    gen = H.load_native(H.tiny_wan_state_dict(num_layers=2, seed=3))
    latent = {"samples": torch.zeros(1, 16, 3, 8, 8)}
    kw = _inject_kwargs(end=0.6, **{field: value})
    with pytest.raises(ValueError, match=match):
        pack.nodes.inject.InjectMotionSampler.execute(model=gen, features=feats, **_sample_kwargs(latent), **kw)
    with pytest.raises(ValueError, match=match):
        pack.nodes.inject.ApplyMotionInjection.execute(model=gen, features=feats, **kw)


def test_patched_model_warns_when_a_run_misses_the_window(pack, feats, caplog):
    comfy_nodes = H.comfy_nodes()

    gen = H.load_native(H.tiny_wan_state_dict(num_layers=2, seed=3))
    patched = pack.nodes.inject.ApplyMotionInjection.execute(model=gen, features=feats,
                                                             **_inject_kwargs(start=0.7, end=0.9)).args[0]
    latent = {"samples": torch.zeros(1, 16, 3, 8, 8)}
    with caplog.at_level("WARNING", logger="moaw"):
        comfy_nodes.common_ksampler(patched, 5, 3, 1.0, "euler", "simple", _sample_kwargs(latent)["positive"],
                                    _sample_kwargs(latent)["negative"], latent)
    assert "contains none of this run's 3 steps" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="moaw"):
        comfy_nodes.common_ksampler(patched, 5, 10, 1.0, "euler", "simple", _sample_kwargs(latent)["positive"],
                                    _sample_kwargs(latent)["negative"], latent)
    assert "contains none" not in caplog.text  # steps 7 and 8 of 10 are in the window


# ---- saving ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "a/b", "/abs/x", "..", ".hidden", "a\\b", "", "  ", "x" * 500, "a\x00b"])
def test_save_names_with_folders_are_refused_not_shortened(pack, feats, out_dir, name):
    with pytest.raises(ValueError, match="name"):
        pack.nodes.features_io.SaveMotionFeatures.execute(features=feats, name=name)
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert not (out_dir.parent.parent / "evil.safetensors").exists()


def test_extract_checks_cache_name_before_the_capture(pack, tracker_file, out_dir, monkeypatch):
    tracker = pack.nodes.tracker.load_tracker(str(tracker_file), "tiny")
    called = []
    monkeypatch.setattr(pack.nodes.extract, "extract", lambda *a, **k: called.append(1))
    with pytest.raises(ValueError, match="cache_name"):
        pack.nodes.extract.ExtractMotionFeatures.execute(source=_source(), layers="all", steps=1, seed=0, cfg=1.0,
                                                         tracker=tracker, cache_name="../x")
    assert not called


def test_saves_count_up_and_never_overwrite(pack, feats, out_dir):
    S = pack.nodes.features_io.SaveMotionFeatures
    S.execute(features=feats, name="motion")
    first = (out_dir / "motion_00001_.safetensors").read_bytes()
    S.execute(features=feats.subset(["block.1"]), name="motion.safetensors")  # same name, suffix typed
    S.execute(features=feats, name="motion_b")
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "motion_00001_.safetensors", "motion_00002_.safetensors", "motion_b_00001_.safetensors"]
    assert (out_dir / "motion_00001_.safetensors").read_bytes() == first
    listed = pack.nodes.feature_files.list_files()
    assert listed == ["motion_00001_.safetensors", "motion_00002_.safetensors", "motion_b_00001_.safetensors"]


def test_failed_save_leaves_no_temp_file(pack, feats, out_dir, monkeypatch):
    import safetensors.torch as st

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt  # as Ctrl-C in the middle of the write

    monkeypatch.setattr(st, "save_file", broken)
    with pytest.raises(KeyboardInterrupt):
        pack.nodes.features_io.SaveMotionFeatures.execute(features=feats, name="motion")
    assert list(out_dir.iterdir()) == []


_KILLED_SAVE = """
import sys, time, torch, safetensors.torch as st
sys.path.append(sys.argv[2])
from moaw_core.engine.features import MotionFeatures
def slow(tensors, filename, metadata=None):
    open(filename, "wb").write(b"partial"); print("writing", flush=True); time.sleep(60)
st.save_file = slow
f = MotionFeatures({("block.0", 0): torch.zeros(1, 1, 1, 1, 4)}, "comfy_wan", {}, (1, 16, 1, 2, 2), (1.0,))
f.save(sys.argv[1] + "/killed_00001_.safetensors", overwrite=False)
"""


def test_killed_save_leftovers_are_not_listed_and_are_removed_later(pack, feats, out_dir):
    out_dir.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(out_dir), str(H.ROOT)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p for p in out_dir.iterdir()]
    assert len(left) == 1 and left[0].name.endswith(".tmp"), left  # SIGKILL cannot be cleaned up after...
    assert pack.nodes.feature_files.list_files() == []  # ...but it is never offered for loading
    fresh = out_dir / ".other.safetensors.abc123.tmp"  # a save in progress right now
    fresh.write_bytes(b"x")
    old = time.time() - 2 * 3600
    os.utime(left[0], (old, old))
    pack.nodes.features_io.SaveMotionFeatures.execute(features=feats, name="motion")
    assert sorted(p.name for p in out_dir.iterdir()) == [fresh.name, "motion_00001_.safetensors"]


# ---- loading -------------------------------------------------------------------------------------------------------

def test_load_features_reloads_a_file_replaced_under_the_same_name(pack, feats, out_dir):
    N = pack.nodes
    N.features_io.SaveMotionFeatures.execute(features=feats, name="motion")
    name = "motion_00001_.safetensors"
    L = N.features_io.LoadMotionFeatures
    before = L.fingerprint_inputs(name=name)
    assert L.fingerprint_inputs(name=name) == before  # unchanged file: ComfyUI may reuse the cached output
    other = feats.subset(["block.1"])
    other.save(out_dir / name)  # replaced under the same name (e.g. copied in by the user)
    after = L.fingerprint_inputs(name=name)
    assert after != before
    assert L.execute(name=name).args[0].layers == ("block.1",)
    missing = L.fingerprint_inputs(name="gone.safetensors")
    assert missing != missing  # NaN: never cached, so execute reports the missing file
    with pytest.raises(FileNotFoundError, match="gone.safetensors"):
        L.execute(name="gone.safetensors")
    with pytest.raises(ValueError, match="plain file name"):
        L.execute(name="../motion_00001_.safetensors")


def _damaged(path, feats, meta_patch=None, tensors=None):
    feats.save(path)
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    sd = load_file(str(path)) if tensors is None else tensors
    if meta_patch is not None:
        meta.update(meta_patch(json.loads(meta["moaw_meta"])))
    save_file(sd, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("case,match", [
    ("meta_not_json", "not valid JSON"),
    ("meta_list", "must be a JSON object"),
    ("no_sigmas", "'sigmas' must be a list"),
    ("nan_sigma", "finite numbers"),
    ("bad_shape", "latent_shape"),
    ("int_tensors", "must be floating point"),
    ("bad_key", "is not '<layer>/<step>'"),
    ("step_outside", "outside sigmas"),
])
def test_damaged_feature_files_give_clear_errors(pack, feats, out_dir, case, match):
    out_dir.mkdir(parents=True)
    path = out_dir / "bad.safetensors"
    patches = {
        "meta_not_json": lambda m: {"moaw_meta": "{not json"},
        "meta_list": lambda m: {"moaw_meta": "[1, 2]"},
        "no_sigmas": lambda m: {"moaw_meta": json.dumps({**m, "sigmas": None})},
        "nan_sigma": lambda m: {"moaw_meta": json.dumps({**m, "sigmas": [float("nan")] * len(m["sigmas"])})},
        "bad_shape": lambda m: {"moaw_meta": json.dumps({**m, "latent_shape": [1, "a"]})},
    }
    tensors = {
        "int_tensors": {k: torch.ones(1, 1, 1, 1, 2, dtype=torch.int32) for k in ("block.0/0000",)},
        "bad_key": {"block.0": torch.ones(1, 1, 1, 1, 2)},
        "step_outside": {"block.0/0099": torch.ones(1, 1, 1, 1, 2)},
    }
    _damaged(path, feats, patches.get(case), tensors.get(case))
    with pytest.raises(ValueError, match=match):
        pack.nodes.features_io.LoadMotionFeatures.execute(name="bad.safetensors")


# ---- tracker files -------------------------------------------------------------------------------------------------

def _rewrite(src, dst, meta_patch=None, sd_patch=None):
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    sd = load_file(str(src))
    if sd_patch:
        sd_patch(sd)
    meta.update(meta_patch or {})
    save_file(sd, str(dst), metadata={k: v for k, v in meta.items() if v is not None})
    return dst


def _drop_block(sd):
    for k in [k for k in sd if k.startswith("blocks.1.")]:
        del sd[k]


def _drop_weight(sd):
    del sd["blocks.0.self_attn.q.weight"]


def _nan_weight(sd):
    sd["blocks.0.ffn.0.weight"][0, 0] = float("nan")


@pytest.mark.parametrize("meta_patch,sd_patch,match", [
    (None, _drop_block, "holds 1 blocks, its moaw.config says 2"),
    (None, _drop_weight, "1 weight\\(s\\) missing \\(blocks.0.self_attn.q.weight\\)"),
    (None, _nan_weight, "NaN/Inf weights in 1 tensor\\(s\\) \\(blocks.0.ffn.0.weight\\)"),
    ({"moaw.source_input": "{oops"}, None, "moaw.source_input metadata is not valid JSON"),
    ({"moaw.source_input": None}, None, "lacks moaw.source_input"),
    ({"moaw.source_input": json.dumps({"mode": "concat", "track_latents": [0, 32]})}, None, "video_latents"),
    ({"moaw.schedule": "[]"}, None, "moaw.schedule metadata must be a JSON object"),
    ({"moaw.schedule": json.dumps({"shift": -1})}, None, "shift must be a positive number"),
    ({"moaw.config": "{"}, None, "moaw.config metadata is not valid JSON"),
    ({"moaw.track_encoding": "{}"}, None, "moaw.track_encoding metadata is missing or damaged"),
])
def test_damaged_tracker_files_give_clear_errors(pack, tracker_file, tmp_path, meta_patch, sd_patch, match):
    bad = _rewrite(tracker_file, tmp_path / "bad.safetensors", meta_patch, sd_patch)
    with pytest.raises(ValueError, match=match):
        pack.nodes.tracker.load_tracker(str(bad), "bad.safetensors")
