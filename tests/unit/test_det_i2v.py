"""DeT's image-to-video path (`moaw_core.det.i2v`) on the bundled tiny I2V generator and codec, and the defaults file."""
import json
from pathlib import Path

import pytest
import torch

from moaw_core.det import i2v as det_i2v
from moaw_core.det.pipeline import adapters_for

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "models" / "generators" / "moaw_tiny_wan_i2v.safetensors"
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"


def test_defaults_file(tmp_path):
    gen = tmp_path / "g.safetensors"
    assert det_i2v.defaults_path(gen) == tmp_path / "g.det.json"
    assert det_i2v.load_defaults(gen) == det_i2v.DEFAULTS                       # no file: built-in
    det_i2v.defaults_path(gen).write_text(json.dumps({"train": {"steps": 7, "lr": 0.01}, "apply": {"fraction": 0.5}}))
    d = det_i2v.load_defaults(gen)
    assert d["train"]["steps"] == 7 and d["train"]["track_weight"] == det_i2v.DEFAULTS["train"]["track_weight"]
    assert d["apply"] == {"fraction": 0.5, "strength": 1.0} and det_i2v.train_config(d).lr == 0.01
    det_i2v.defaults_path(gen).write_text(json.dumps({"train": {"stepz": 7}}))
    with pytest.raises(ValueError, match="unknown DeT training settings"):
        det_i2v.load_defaults(gen)
    det_i2v.defaults_path(gen).write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        det_i2v.load_defaults(gen)


def test_bundled_generator_has_defaults():
    d = det_i2v.load_defaults(GENERATOR)
    assert det_i2v.defaults_path(GENERATOR).is_file()
    assert 1 <= d["train"]["steps"] <= 1000 and 0 < d["apply"]["fraction"] <= 1


@pytest.fixture(scope="module")
def tiny():
    from moaw_core.engine import i2v
    from moaw_core.engine.checkpoint import load_backbone
    from moaw_core.tracking.codecs import PatchPCACodec

    gen, meta = load_backbone(GENERATOR, "generator")
    return gen.eval(), PatchPCACodec.load(CODEC), i2v.layout_of(gen, meta)


def _clip():
    from moaw_core.data.sources import synthetic_source

    return synthetic_source(7, frames=4, height=32, width=32, camera="static", objects="right", speed=2.0).video


def test_zero_adapters_leave_the_i2v_sampling_unchanged(tiny):
    gen, codec, layout = tiny
    image = _clip()[0]
    plain = det_i2v.animate_i2v(gen, codec, layout, image, 4, seed=3, steps=2)
    zero = det_i2v.animate_i2v(gen, codec, layout, image, 4, seed=3, adapters=adapters_for(gen), steps=2, fraction=1.0)
    assert torch.equal(plain, zero) and plain.shape == (4, 32, 32, 3)


def test_transfer_case_trains_and_samples(tiny):
    gen, codec, layout = tiny
    src = _clip()
    out = det_i2v.transfer_case(gen, codec, layout, src, src[0].flip(-1), seeds=[0, 1], steps=2,
                                defaults={**det_i2v.DEFAULTS, "train": {"steps": 2, "lr": 1e-2, "track_weight": 0.1}})
    assert set(out["videos"]) == {0, 1} and out["videos"][0].shape == src.shape
    assert out["trained"].info["task"] == "i2v" and out["trained"].state.step == 2 and out["train_seconds"] > 0
    assert any(float(m.conv_out.weight.abs().max()) > 0 for m in out["trained"].adapters.blocks.values())
    plain = det_i2v.animate_i2v(gen, codec, layout, src[0].flip(-1), 4, seed=0, steps=2)
    assert not torch.equal(plain, out["videos"][0])
    assert all(not p.requires_grad for p in gen.parameters())


def test_i2v_bad_inputs(tiny):
    gen, codec, layout = tiny
    src = _clip()
    with pytest.raises(ValueError, match="image-to-video generator"):
        det_i2v.train_i2v(gen, codec, None, src, det_i2v.train_config(det_i2v.DEFAULTS))
    with pytest.raises(ValueError, match=r"source: expected a video \[T, H, W, 3\]"):
        det_i2v.transfer_case(gen, codec, layout, src[0], src[0], seeds=[0])
    with pytest.raises(ValueError, match="steps"):
        det_i2v.train_config(det_i2v.DEFAULTS, steps=0)


def test_plain_matches_the_demo_sampling(tiny):
    """adapters=None is the demo's own plain generation (same noise, schedule, held frame 0): the paired baseline."""
    from moaw_core.cli.demo import DemoConfig, Models, animate

    gen, codec, layout = tiny
    image = _clip()[0]
    cfg = DemoConfig(gen_steps=2)
    ours = det_i2v.animate_i2v(gen, codec, layout, image, 4, seed=5, steps=2, denoise=cfg.denoise, shift=cfg.shift,
                               keep_first_frame=cfg.keep_first_frame)
    theirs = animate(Models(gen, None, {}, codec, layout), image, 4, 5, cfg)
    assert torch.equal(ours, theirs)
