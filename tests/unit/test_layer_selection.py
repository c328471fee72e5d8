"""Layer scoring: a layer built to carry the class signal ranks first under every score (synthetic source and a
tiny diffusers Wan with the signal added at one block), determinism, chunked = one-pass, the tracker source,
LayerScores files / heat maps, the CLI, and clear errors for bad inputs."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moaw_core.engine.features import MotionFeatures
from moaw_core.selection.layer_selection import (SCORES, GeneratorSource, LayerScores, ScoreConfig, TrackerSource,
                                       score_layers, training_free_sigmas)
from moaw_core.selection.heatmap import render_heatmap
from moaw_core.selection.motion_dataset import MotionDataset, MotionDatasetConfig, build_motion_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

D = pytest.importorskip("diffusers")
SMALL = dict(classes="camera", clips_per_class=3, frames=4, height=16, width=16, speed_jitter=0.2)


@pytest.fixture(scope="module")
def ds():
    return build_motion_dataset(MotionDatasetConfig(**SMALL))


def encode(video):
    """[T, H, W, 3] -> [1, 4, T, H/4, W/4]: 4x4 mean RGB plus grey."""
    x = F.avg_pool2d(video.permute(0, 3, 1, 2), 4)  # [T, 3, h, w]
    x = torch.cat([x, x.mean(1, keepdim=True)], 1)
    return x.permute(1, 0, 2, 3)[None].contiguous()


def _label_of(ds):
    table = {encode(v).numpy().tobytes(): int(y) for v, y in zip(ds.videos, ds.labels)}
    return lambda latents: table[latents.numpy().tobytes()]


class SyntheticSource:
    """block.3 holds a per-class direction (+ noise) at step 0, weaker at step 1; every other layer is noise."""

    layers = tuple(f"block.{i}" for i in range(5))

    def __init__(self, label_of, n_classes, width=8):
        self.label_of, self.width = label_of, width
        self.dirs = torch.randn(n_classes, width, generator=torch.Generator().manual_seed(99)) * 3

    def __call__(self, latents, layers, seed):
        g = torch.Generator().manual_seed(seed)
        y = self.label_of(latents)
        out = {}
        for name in SyntheticSource.layers:  # draw noise for every layer so chunking cannot change the values
            for step in (0, 1):
                t = torch.randn(1, 4, 2, 2, self.width, generator=g)
                if name == "block.3":
                    t = t + self.dirs[y] * (1.0 if step == 0 else 0.3)
                if name in layers:
                    out[(name, step)] = t.half()
        return MotionFeatures(out, "synthetic", {"family": "synthetic"}, tuple(latents.shape), (0.8, 0.4))


def test_signal_layer_ranks_first_everywhere(ds):
    src = SyntheticSource(_label_of(ds), len(ds.class_names))
    scores = score_layers(src, ds, encode, config=ScoreConfig(remove_content=False, grid=1))
    assert scores.layers == src.layers and scores.steps == (0, 1) and scores.sigmas == (0.8, 0.4)
    assert len(scores.rows) == 10
    for by in SCORES:
        best = min(scores.rows, key=lambda r: -r[by])
        assert (best["layer"], best["step"]) == ("block.3", 0), by
        assert scores.top_k(1, by=by) == ["block.3"]
    assert scores.rows[0]["layer"] == "block.3" and scores.rows[0]["probe"] == 1.0
    assert scores.top_k(3) == list(dict.fromkeys(r["layer"] for r in scores.rows))[:3]
    noise = [r for r in scores.rows if r["layer"] != "block.3"]
    assert max(r["probe"] for r in noise) < 0.6 and max(r["silhouette"] for r in noise) < 0.1
    assert scores.meta["folds"] == 3 and scores.meta["passes"] == 1 and scores.meta["memory"]["max_pooled_bytes"] > 0


def test_deterministic_and_chunked_equals_one_pass(ds):
    src = SyntheticSource(_label_of(ds), len(ds.class_names))
    cfg = ScoreConfig(seed=3)
    a = score_layers(src, ds, encode, config=cfg)
    b = score_layers(src, ds, encode, config=cfg)
    assert a.rows == b.rows
    calls = []
    c = score_layers(src, ds, encode, config=ScoreConfig(seed=3, layers_per_pass=2),
                     progress=lambda d, n: calls.append((d, n)))
    assert c.rows == a.rows and c.meta["passes"] == 3
    assert calls[-1] == (54, 54) and len(calls) == 54
    assert c.meta["memory"]["max_pooled_bytes"] < a.meta["memory"]["max_pooled_bytes"]
    sub = score_layers(src, ds, encode, layers=["block.4", "block.3"], config=cfg)
    assert sub.layers == ("block.3", "block.4") and {r["layer"] for r in sub.rows} == {"block.3", "block.4"}


def _tiny_wan(layers=3):
    torch.manual_seed(0)
    return D.WanTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                   text_dim=16, freq_dim=16, ffn_dim=32, num_layers=layers,
                                   rope_max_seq_len=32).eval()


def test_diffusers_generator_signal_block_ranks_first(ds):
    """A class signal added to block.1's output (and removed again before block.2) makes block.1 the winner."""
    model = _tiny_wan()
    label_of, state = _label_of(ds), {}
    dirs = torch.randn(len(ds.class_names), 16, generator=torch.Generator().manual_seed(5))

    def signal(h, std):  # a motion-like signal: a ramp over the 4 frames (tokens are frame-major)
        ramp = torch.linspace(-1, 1, 4).repeat_interleave(h.shape[1] // 4)[None, :, None]
        return 4 * std * ramp * dirs[state["y"]]

    def add(mod, args, out):
        return out + signal(out, out.std())

    def remove(mod, args, kwargs):
        return (args[0] - signal(args[0], state["std"]),) + args[1:], kwargs

    def keep_std(mod, args, out):
        state["std"] = out.std()
        return out

    h1 = model.blocks[1].register_forward_hook(keep_std)
    h2 = model.blocks[1].register_forward_hook(add)
    h3 = model.blocks[2].register_forward_pre_hook(remove, with_kwargs=True)
    inner = GeneratorSource(model, [0.6, 0.3])

    class Labelled:
        layers = inner.layers

        def __call__(self, latents, layers, seed):
            state["y"] = label_of(latents)
            return inner(latents, layers, seed)

    try:
        scores = score_layers(Labelled(), ds, encode)
    finally:
        for h in (h1, h2, h3):
            h.remove()
    assert scores.layers == ("block.0", "block.1", "block.2") and scores.steps == (0, 1)
    assert scores.sigmas == pytest.approx((0.6, 0.3))
    for by in SCORES:
        assert scores.top_k(1, by=by) == ["block.1"], (by, scores.rows)
    other = [r["fisher"] for r in scores.rows if r["layer"] != "block.1"]
    best = max(r["fisher"] for r in scores.rows if r["layer"] == "block.1")
    assert best > 5 * max(other)


def test_tracker_source_steps_and_layers(ds):
    from moaw_core.tracking.tracker import MoawTracker

    tracker = MoawTracker.from_generator(_tiny_wan(2), 4).eval()
    src = TrackerSource(tracker, steps=2, init_noise="gaussian")
    one_schedule = [1.0, float(torch.tensor(0.001)), 0.0]  # the sampler's own (diffusers FlowMatchEuler) schedule
    assert src.sigmas == one_schedule and src.layers == ("block.0", "block.1")
    two = MotionDataset(ds.videos[:6], ds.labels[:6], ds.class_names[:2])
    scores = score_layers(src, two, encode)
    assert scores.steps == (0, 1) and scores.sigmas == tuple(one_schedule[:2]) and len(scores.rows) == 4
    with pytest.raises(ValueError, match="video_latents"):
        src(torch.zeros(1, 3, 4, 4, 4), ["block.0"], 0)
    assert training_free_sigmas(3) == [0.75, 0.5, 0.25]


def test_bad_inputs(ds):
    src = SyntheticSource(_label_of(ds), len(ds.class_names))
    one = MotionDataset(ds.videos[:3], ds.labels[:3], ds.class_names)
    with pytest.raises(ValueError, match=">= 2 classes with >= 2 clips"):
        score_layers(src, one, encode)
    with pytest.raises(ValueError, match="empty dataset"):
        MotionDataset(ds.videos[:0], ds.labels[:0], ds.class_names)
    with pytest.raises(TypeError, match="MotionDataset"):
        score_layers(src, ds.videos, encode)
    with pytest.raises(ValueError, match=r"layers: expected a non-empty subset .*unknown: \['block.9'\]"):
        score_layers(src, ds, encode, layers=["block.9"])
    with pytest.raises(ValueError, match="encode: expected a latent"):
        score_layers(src, ds, lambda v: v)

    class WrongModel(SyntheticSource):  # claims layers its captures do not hold
        layers = ("down.0", "block.3")

    with pytest.raises(ValueError, match=r"requested layers \['down.0'\] missing .* do not match"):
        score_layers(WrongModel(src.label_of, 6), ds, encode)
    with pytest.raises(ValueError, match="by"):
        ScoreConfig(by="accuracy")
    gen = GeneratorSource(_tiny_wan(2), [0.5])
    with pytest.raises(ValueError, match="unknown layer name"):  # a real model rejects foreign names too
        gen(encode(ds.videos[0]), ["double.0"], 0)
    with pytest.raises(ValueError, match=r"latents: expected \[B, 4, T, H, W\].*mismatch"):
        score_layers(gen, ds, lambda v: encode(v)[:, :3])


def _table():
    rows = [{"layer": "block.0", "step": 0, "fisher": math.inf, "silhouette": 0.9, "probe": 1.0},
            {"layer": "block.1", "step": 0, "fisher": 0.5, "silhouette": 0.1, "probe": 0.5},
            {"layer": "block.1", "step": 1, "fisher": 2.0, "silhouette": 0.2, "probe": 1.0},
            {"layer": "block.0", "step": 1, "fisher": 1.0, "silhouette": -0.2, "probe": 0.25}]
    return LayerScores(rows, ("block.0", "block.1"), (0, 1), (0.7, 0.3), "probe", ("a", "b", "c", "d"))


def test_layer_scores_json_files_and_heatmaps(tmp_path):
    s = _table()
    assert [(r["layer"], r["step"]) for r in s.rows][:2] == [("block.0", 0), ("block.1", 1)]
    assert s.top_k(5) == ["block.0", "block.1"] and s.top_k(1, by="silhouette") == ["block.0"]
    assert s.chance == 0.25 and s.grid("probe").tolist() == [[1.0, 0.25], [0.5, 1.0]]
    text = s.to_json()
    assert json.loads(text)["rows"][0]["fisher"] == "inf"  # strict JSON
    back = LayerScores.from_json(text)
    assert back.rows == s.rows and back.sigmas == s.sigmas and back.class_names == s.class_names
    path = s.save(tmp_path / "x" / "scores.json")
    assert LayerScores.load(path).rows == s.rows
    with pytest.raises(FileNotFoundError):
        LayerScores.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="bad.json.*format"):
        LayerScores.load(tmp_path / "bad.json")
    for backend in ("cv2", "matplotlib"):
        img = render_heatmap(s, backend)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 40
    t = s.heatmap_tensor("cv2")
    assert t.shape[0] == 1 and t.dtype == torch.float32 and 0 <= float(t.min()) <= float(t.max()) <= 1
    assert s.save_heatmap(tmp_path / "h.png", backend="cv2").stat().st_size > 500
    with pytest.raises(ValueError, match="no rows"):
        LayerScores([], ("block.0",), (0,))


def test_cli_on_tiny_tracker_file(tmp_path):
    from moaw_core.__main__ import main
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import PatchPCACodec, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    codec = PatchPCACodec.fit(torch.rand(1, 2, 16, 16, 3, generator=torch.Generator().manual_seed(0)), 4, 4)
    codec.save(tmp_path / "codec.safetensors")
    tr = MoawTracker.from_generator(build_wan(dim=128, num_layers=2, ffn_dim=64, in_channels=4, out_channels=4,
                                              text_dim=16), 8)
    save_model(tmp_path / "tracker.safetensors", tr.backbone, "tracker", codec.codec_id,
               TrackEncoding(8.0, codec.codec_id, 4), video_channels=4, schedule={"steps": 1, "shift": 1.0})
    out = tmp_path / "out"
    rc = main(["score", "--tracker", str(tmp_path / "tracker.safetensors"),
               "--codec", str(tmp_path / "codec.safetensors"), "--out", str(out), "--classes", "object", "--clips-per-class", "2", "--frames", "4",
               "--size", "16", "16", "--top-k", "1", "--layers-per-pass", "1"])

    assert rc == 0
    scores = LayerScores.load(out / "scores.json")
    assert scores.layers == ("block.0", "block.1") and scores.meta["passes"] == 2
    assert (out / "heatmap.png").stat().st_size > 500
    assert (out / "top_k.txt").read_text().split() == scores.top_k(1)
