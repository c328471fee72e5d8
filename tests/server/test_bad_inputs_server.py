"""A careless artist on a real ComfyUI server: absurd layer specs, NaN strength, empty windows, folder-like
save names, damaged tracker and feature files, and a feature file replaced under the same name. Each prompt
ends with a short execution error naming the input (or, for the replaced file, reloads it), and the server
stays up. docs/BAD_INPUTS.md lists the cases."""
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import hosttools as H

pytestmark = pytest.mark.server


def _features(layers=("block.0", "block.1")):
    from moaw_core.engine.features import MotionFeatures

    g = torch.Generator().manual_seed(0)
    tensors = {(layer, s): torch.randn(1, 3, 4, 4, 128, generator=g).half() for layer in layers for s in (0, 1)}
    return MotionFeatures(tensors, "comfy_wan", {"family": "wan"}, (1, 16, 3, 8, 8), (1.0, 0.5))


@pytest.fixture(scope="module")
def files(comfy_server):
    """A feature cache, a damaged one and a tracker with a NaN weight, in the server's own folders."""
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    feats_dir = comfy_server.base / "output" / "moaw_features"
    feats_dir.mkdir(parents=True, exist_ok=True)
    _features().save(feats_dir / "probe_src.safetensors")
    damaged = feats_dir / "probe_damaged.safetensors"
    _features().save(damaged)
    with safe_open(str(damaged), "pt") as f:
        meta = dict(f.metadata())
    save_file(load_file(str(damaged)), str(damaged), metadata={**meta, "moaw_meta": "{oops"})
    trk_dir = comfy_server.base / "models" / "moaw_trackers"
    trk_dir.mkdir(parents=True, exist_ok=True)
    tracker = MoawTracker.from_generator(build_wan(num_layers=2, seed=1), 32)
    path = save_model(trk_dir / "nan_tracker.safetensors", tracker.backbone, "tracker", PATCH_PCA_ID,
                      TrackEncoding(24.0, PATCH_PCA_ID, 16), video_channels=16)
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    sd = load_file(str(path))
    sd["blocks.1.ffn.0.weight"][0, 0] = float("nan")
    save_file(sd, str(path), metadata=meta)
    return feats_dir


def _error(entry) -> str:
    assert entry["status"]["status_str"] == "error", json.dumps(entry["status"])[:2000]
    for kind, body in entry["status"]["messages"]:
        if kind == "execution_error":
            return body["exception_message"]
    raise AssertionError(json.dumps(entry["status"])[:2000])


def _load_select_save(name, layers="all", save_name="probe_out"):
    return {"1": {"class_type": "LoadMotionFeatures", "inputs": {"name": name}},
            "2": {"class_type": "SelectLayers", "inputs": {"features": ["1", 0], "layers": layers}},
            "3": {"class_type": "SaveMotionFeatures", "inputs": {"features": ["2", 0], "name": save_name}}}


def _inject(**settings):
    inj = dict(strength=1.0, start=0.0, end=0.5, mode="add", normalize=False, remove_content=False, branch="cond",
               resample=True)
    inj.update(settings)
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "tiny_wan_t2v.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "MoawEmptyConditioning", "inputs": {"width": 4096, "length": 1}},
        "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}},
        "4": {"class_type": "LoadMotionFeatures", "inputs": {"name": "probe_src.safetensors"}},
        "5": {"class_type": "InjectMotionSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0], "seed": 0,
            "steps": 2, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0,
            "features": ["4", 0], **inj}},
        "6": {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "probe"}},
    }


CASES = [
    ("range 0-1000000", lambda: _load_select_save("probe_src.safetensors", "block.0-1000000"), "includes unknown layers"),
    ("range past int", lambda: _load_select_save("probe_src.safetensors", "block.0-" + "9" * 40), "index too large"),
    ("save ../evil", lambda: _load_select_save("probe_src.safetensors", save_name="../evil"), "not a plain file name"),
    ("save a/b", lambda: _load_select_save("probe_src.safetensors", save_name="a/b"), "not a plain file name"),
    ("save /abs/x", lambda: _load_select_save("probe_src.safetensors", save_name="/abs/x"), "not a plain file name"),
    ("damaged features", lambda: _load_select_save("probe_damaged.safetensors"), "damaged feature metadata"),
    ("strength NaN", lambda: _inject(strength=math.nan), "strength must be a finite number"),
    ("start >= end", lambda: _inject(start=0.5, end=0.5), "window is empty"),
    ("window misses steps", lambda: _inject(start=0.6, end=0.9), "contains none of the 2 steps"),
    ("NaN tracker", lambda: {
        "1": {"class_type": "LoadMoawTracker", "inputs": {"tracker_name": "nan_tracker.safetensors"}},
        "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}},
        "3": {"class_type": "ExtractMotionFeatures", "inputs": {"source": ["2", 0], "layers": "all", "steps": 1,
                                                                "seed": 0, "cfg": 1.0, "tracker": ["1", 0]}},
        "4": {"class_type": "SaveMotionFeatures", "inputs": {"features": ["3", 0], "name": "probe_trk"}}},
     "NaN/Inf weights in 1 tensor(s) (blocks.1.ffn.0.weight)"),
]


@pytest.mark.parametrize("label,prompt,expected", CASES, ids=[c[0] for c in CASES])
def test_careless_prompts_end_with_a_short_clear_error(comfy_server, files, label, prompt, expected):
    message = _error(comfy_server.run(prompt(), timeout=300))
    assert expected in message and len(message) < 600, message[:1000]
    assert comfy_server.get("/system_stats")  # the server is still serving
    assert not any(p.name.startswith("evil") for p in comfy_server.base.rglob("evil*"))


def test_a_feature_file_replaced_under_the_same_name_is_reloaded(comfy_server, files):
    out = files
    prompt = _load_select_save("probe_src.safetensors", save_name="probe_reload")
    first = comfy_server.run(prompt)
    assert first["status"]["status_str"] == "success"
    assert first["outputs"]["2"]["text"] == ["block.0, block.1"]
    _features(("block.1",)).save(out / "probe_src.safetensors")  # same name, other content
    second = comfy_server.run(prompt)
    assert second["status"]["status_str"] == "success"
    assert second["outputs"]["2"]["text"] == ["block.1"], "the replaced file was not reloaded (stale cache)"
    saved = sorted(p.name for p in out.glob("probe_reload_*"))
    assert saved == ["probe_reload_00001_.safetensors", "probe_reload_00002_.safetensors"]  # nothing overwritten
