"""Image-to-video conditioning: widening starts as the generator, one condition builder for training / CLI,
the tracker made from an I2V generator, first-frame keeping in `generate`, the trainer's i2v task, bad input."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from moaw_core.engine import i2v
from moaw_core.engine.transfer import generate
from moaw_core.tracking.codecs import PatchPCACodec
from moaw_core.tracking.tracker import MoawTracker, backbone_forward, build_wan


@pytest.fixture(scope="module")
def gen():
    return build_wan(num_layers=2, seed=0).eval()


@pytest.fixture(scope="module")
def codec():
    g = torch.Generator().manual_seed(0)
    return PatchPCACodec.fit(torch.rand(4, 3, 16, 16, 3, generator=g), channels=16, patch=4)


def _t(b=1):
    return torch.full((b,), 500.0)


def test_widened_generator_starts_as_the_generator(gen):
    wide, layout = i2v.widen_for_i2v(gen)
    assert (wide.config.in_channels, layout.in_channels, layout.condition_channels) == (36, 36, 20)
    assert gen.config.in_channels == 16  # the input is not modified
    x, cond = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 20, 2, 4, 4)
    with torch.no_grad():
        a = backbone_forward(gen, x, _t())
        b = backbone_forward(wide, torch.cat([x, cond], 1), _t())
    assert torch.allclose(a, b, atol=1e-5)
    assert i2v.layout_of(wide) == layout and i2v.layout_of(gen) is None
    torch.manual_seed(1)  # once trained, the condition matters (random weights: a constant would vanish in LayerNorm)
    wide.patch_embedding.weight.data[:, 16:] = torch.randn_like(wide.patch_embedding.weight[:, 16:]) * 0.1
    with torch.no_grad():
        assert not torch.allclose(backbone_forward(wide, torch.cat([x, cond], 1), _t()), a, atol=1e-3)


@pytest.mark.parametrize("fill", i2v.FILLS)
def test_training_condition_equals_pixel_condition(codec, fill):
    """The trainer's latent shortcut and the CLI/node pixel path give the same condition."""
    layout = i2v.I2VLayout(16, fill)
    video = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(1))
    lat = codec.encode(video)
    gray = codec.encode(torch.full((1, 16, 16, 3), i2v.GRAY))[0, :, 0]
    fast = i2v.condition_from_latents(lat, layout, gray)
    cond, cond_lat = i2v.image_condition(codec.encode, video[0], 5, layout)
    assert fast.shape == cond.shape == (1, 20, 5, 4, 4)
    assert torch.allclose(fast, cond, atol=1e-5)
    assert torch.allclose(cond_lat[:, :, 0], lat[:, :, 0], atol=1e-5)
    assert torch.equal(cond[0, :4, 0], torch.ones(4, 4, 4)) and torch.equal(cond[0, :4, 1:], torch.zeros(4, 4, 4, 4))
    pix = i2v.condition_pixels(video[0], 3, fill)
    assert torch.equal(pix[0], video[0]) and (torch.equal(pix[2], video[0]) if fill == "repeat"
                                              else bool((pix[2] == i2v.GRAY).all()))


def test_tracker_from_i2v_generator_reads_the_video_as_its_condition(gen):
    wide, layout = i2v.widen_for_i2v(gen)
    torch.manual_seed(3)
    wide.patch_embedding.weight.data[:, 16:] = torch.randn_like(wide.patch_embedding.weight[:, 16:]) * 0.02
    trk = MoawTracker.from_generator(wide, 32)
    assert (trk.track_channels, trk.video_channels, trk.backbone.config.in_channels) == (32, 16, 48)
    video = torch.randn(1, 16, 2, 4, 4)
    with torch.no_grad():
        out = trk(torch.zeros(1, 32, 2, 4, 4), video, _t())
        ref = backbone_forward(wide, torch.cat([torch.zeros(1, 16, 2, 4, 4), torch.ones(1, 4, 2, 4, 4), video], 1), _t())
    assert torch.allclose(out[:, :16], ref, atol=1e-4) and torch.allclose(out[:, 16:], ref, atol=1e-4)


def test_generate_keeps_the_first_frame_and_checks_channels(gen, codec):
    wide, layout = i2v.widen_for_i2v(gen)
    image = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(2))
    cond, lat = i2v.image_condition(codec.encode, image, 3, layout)
    keep = (lat, i2v.given_mask(3))
    out = generate(wide, (1, 16, 3, 4, 4), seed=0, steps=2, condition=cond, keep=keep)
    assert torch.allclose(out[:, :, 0], lat[:, :, 0], atol=1e-5)  # frame 0 is the given image's latent
    assert not torch.allclose(out[:, :, 1], lat[:, :, 1], atol=1e-2)
    free = generate(wide, (1, 16, 3, 4, 4), seed=0, steps=2, condition=cond)
    # zero-initialised condition channels: without keeping frame 0 it samples exactly as the generator
    assert torch.allclose(free, generate(gen, (1, 16, 3, 4, 4), seed=0, steps=2), atol=1e-4)
    with pytest.raises(ValueError, match="condition"):
        generate(wide, (1, 16, 3, 4, 4), seed=0, steps=1)  # an I2V generator without its condition
    with pytest.raises(ValueError, match="condition"):
        generate(wide, (1, 16, 3, 4, 4), seed=0, steps=1, condition=cond[:, :, :2])
    with pytest.raises(ValueError, match="keep"):
        generate(wide, (1, 16, 3, 4, 4), seed=0, steps=1, condition=cond, keep=(lat[:, :, :2], keep[1]))


def test_resize_image_covers_and_crops():
    img = torch.zeros(20, 40, 3)
    img[:, 10:30] = 1.0  # a white band in the middle
    out = i2v.resize_image(img, 16, 16)
    assert out.shape == (16, 16, 3) and out.mean() > 0.9  # scaled to cover, centre crop keeps the band
    assert torch.equal(i2v.resize_image(img[None], 20, 40), img)


@pytest.mark.parametrize("call,match", [
    (lambda: i2v.condition_pixels(torch.rand(4, 4), 2), "image"),
    (lambda: i2v.condition_pixels(torch.rand(4, 4, 3), 0), "frames"),
    (lambda: i2v.condition_pixels(torch.rand(4, 4, 3), 2, "blue"), "fill"),
    (lambda: i2v.I2VLayout(16, "blue"), "fill"),
    (lambda: i2v.resize_image("img", 4, 4), "image"),
    (lambda: i2v.resize_image(torch.rand(4, 4, 3), 0, 4), "height"),
    (lambda: i2v.condition_input(torch.rand(1, 8, 2, 4, 4), i2v.given_mask(2), i2v.I2VLayout(16)), "cond_latents"),
    (lambda: i2v.widen_for_i2v(i2v.widen_for_i2v(build_wan(num_layers=1))[0]), "unconditional"),
    (lambda: i2v.image_condition(lambda p: torch.zeros(1, 16, 1, 4, 4), torch.rand(16, 16, 3), 3,
                                 i2v.I2VLayout(16)), "temporal"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_layout_json_roundtrip():
    lay = i2v.I2VLayout(16, "gray")
    assert i2v.I2VLayout.from_json(lay.to_json()) == lay


def test_trainer_i2v_task(tmp_path):
    from moaw_core.engine.checkpoint import load_backbone, read_checkpoint
    from moaw_core.training.trainer import TrainConfig, fit_codec, train

    cfg = TrainConfig(codec=str(tmp_path / "codec.safetensors"), frames=3, height=16, width=16, num_clips=4,
                      data_cache=str(tmp_path), num_layers=1, batch_size=2, warmup=1, log_every=2, save_every=100,
                      steps=2, cpu_threads=1, out_dir=str(tmp_path / "gen"), export=str(tmp_path / "gen.safetensors"))
    fit_codec(dataclasses.replace(cfg, task="codec"))
    gen = train(cfg)
    with pytest.raises(ValueError, match="init"):
        train(dataclasses.replace(cfg, task="i2v", out_dir=str(tmp_path / "x")))
    path = train(dataclasses.replace(cfg, task="i2v", init=str(gen), out_dir=str(tmp_path / "i2v"),
                                     export=str(tmp_path / "i2v.safetensors")))
    model, meta = load_backbone(path, "generator")
    assert model.config.in_channels == 36 and i2v.I2VLayout.from_json(meta["moaw.i2v"]) == i2v.I2VLayout(16)
    sd, _ = read_checkpoint(path)
    assert sd["patch_embedding.weight"].shape[1] == 36  # Wan key format: ComfyUI detects it natively
    cont = train(dataclasses.replace(cfg, task="i2v", init=str(path), out_dir=str(tmp_path / "i2v2"),
                                     export=str(tmp_path / "i2v2.safetensors")))
    assert read_checkpoint(cont)[1]["moaw.i2v"] == meta["moaw.i2v"]
    with pytest.raises(ValueError, match="i2v_fill"):
        train(dataclasses.replace(cfg, task="i2v", init=str(path), i2v_fill="gray", out_dir=str(tmp_path / "y")))
    trk = train(dataclasses.replace(cfg, task="track", init=str(path), loss="l1", out_dir=str(tmp_path / "trk"),
                                    export=str(tmp_path / "trk.safetensors")))
    assert load_backbone(trk, "tracker")[0].config.in_channels == 48
