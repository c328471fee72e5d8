"""MOFT core on diffusers models: math, reference, guidance (mask, loss, weight 0), channel files, bad inputs."""
from pathlib import Path

import pytest
import torch

from moaw_core.engine.adapters import detect
from moaw_core.engine.transfer import generate
from moaw_core.moft import (MoftChannels, MoftGuidanceConfig, MoftGuide, build_reference, channels_path,
                            guided_sample, moft_series, reference_from_model)
from moaw_core.moft.features import moft_loss, pca_channels, region_mask, svd_channels
from moaw_core.moft.guidance import guide_latents, latent_mask
from moaw_core.tracking.tracker import backbone_forward, build_wan

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "models" / "generators" / "moaw_tiny_wan_generator.safetensors"
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"


@pytest.fixture(scope="module")
def tiny():
    return build_wan(num_layers=3, seed=0).eval()


def _moving(seed=0, t=4, h=8, w=8):
    """A latent whose content moves right by one latent pixel per frame."""
    base = torch.randn(1, 16, 1, h, w + t, generator=torch.Generator().manual_seed(seed))
    return torch.cat([base[..., i:i + w] for i in range(t)], dim=2)


def test_math_on_hand_checkable_grids():
    g = torch.zeros(1, 3, 2, 2, 4)
    g[0, :, 0, 0, 1] = torch.tensor([1.0, 2.0, 3.0])  # one position of channel 1 ramps over time
    s = moft_series(g, [1, 2])
    assert torch.allclose(s[0, :, 0], torch.tensor([-0.25, 0.0, 0.25])) and torch.equal(s[0, :, 1], torch.zeros(3))
    m = torch.zeros(3, 2, 2)
    m[:, 0, 0] = 1
    assert torch.allclose(moft_series(g, [1], m)[0, :, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert svd_channels(g, fraction=0.25) == [1]
    series = torch.zeros(4, 3, 5)
    series[:2, :, 3] = torch.tensor([-1.0, 0.0, 1.0])
    series[2:, :, 3] = torch.tensor([1.0, 0.0, -1.0])
    assert pca_channels(series, 1)[0] == [3]
    assert float(moft_loss(torch.ones(1, 2, 3), torch.ones(2, 3), "cosine")) == pytest.approx(0.0, abs=1e-6)


def test_signed_pooling_reads_the_direction_the_mean_misses():
    """A texture translating right / left: the plain spatial mean of the content-removed features is ~0 for both
    (the texture only moves), the "signed" pooling's x part trends with opposite signs; a static texture gives 0."""
    tex = torch.randn(1, 3, 16, 48, generator=torch.Generator().manual_seed(0))
    tex = torch.nn.functional.avg_pool2d(tex, 3, 1, 1).permute(0, 2, 3, 1)  # smooth texture [1, 16, 48, C=3]
    right = torch.stack([tex[:, :, 8 - t:40 - t] for t in range(4)], dim=1)  # content moves right by 1 per frame
    left = right.flip(1)
    t = torch.arange(4.0) - 1.5
    trend = {}
    for name, g in (("right", right), ("left", left)):
        assert moft_series(g, range(3)).abs().max() < 0.15 * moft_series(g, range(3), pooling="signed").abs().max()
        s = moft_series(g, range(3), pooling="signed")
        assert s.shape == (1, 4, 6)
        trend[name] = (s[0, :, :3] * t[:, None]).sum(0)  # x part, per channel
    assert bool((trend["right"] * trend["left"] < 0).all())
    assert moft_series(right[:, :1].expand_as(right), range(3), pooling="signed").abs().max() == 0
    with pytest.raises(ValueError, match="pooling"):
        moft_series(right, [0], pooling="max")
    with pytest.raises(ValueError, match="2 loading"):
        MoftChannels("block.0", 0.2, (1, 2), (0.5, 0.5), pooling="signed")
    ref = build_reference(right, "block.0", 0.2, {}, [0, 2], pooling="signed")
    assert ref.values.shape == (4, 4) and ref.pooling == "signed"


def test_region_mask_sizes():
    assert region_mask(torch.ones(64, 64), (4, 8, 8)).shape == (4, 8, 8)
    assert region_mask(torch.ones(2, 8, 8), (4, 8, 8)).shape == (4, 8, 8)
    with pytest.raises(ValueError, match="mask: size 8x9"):
        region_mask(torch.ones(8, 9), (4, 8, 8))
    with pytest.raises(ValueError, match="non-zero"):
        region_mask(torch.zeros(8, 8), (4, 8, 8))


def test_static_video_gives_moft_near_zero():
    from moaw_core.data.synth import CameraMotion, SynthConfig, render_clip
    from moaw_core.engine.checkpoint import load_backbone
    from moaw_core.tracking.codecs import PatchPCACodec

    gen = load_backbone(GENERATOR, "generator")[0].eval()
    codec = PatchPCACodec.load(CODEC)
    cfg = SynthConfig(frames=8, height=64, width=64)
    rms = {}
    for name in ("static", "pan_left"):
        cam = CameraMotion.static(8) if name == "static" else CameraMotion.preset(name, 8, speed=2.0)
        lat = codec.encode(render_clip(5, cfg, camera=cam, background_only=True).video[None])
        ref = reference_from_model(gen, lat, "block.2", channels=range(256))
        rms[name] = float(ref.values.pow(2).mean().sqrt())
    assert rms["static"] < 0.1 * rms["pan_left"], rms


def test_gradient_is_exactly_zero_outside_the_mask(tiny):
    src = _moving()
    ref = reference_from_model(tiny, src, "block.1")
    mask = torch.zeros(8, 8)
    mask[2:6, 3:7] = 1
    cfg = MoftGuidanceConfig(start=0.0, weight=100.0, mask=mask)
    guide = MoftGuide(tiny, ref, cfg, lambda x, t: backbone_forward(tiny, x, t))
    from moaw_core.engine.hooks import attach

    x = torch.randn(src.shape, generator=torch.Generator().manual_seed(1))
    with attach(tiny, guide.hooks), torch.no_grad():
        new = guide(x, 0, 1, torch.tensor(800.0))
    d = (new - x)[0]
    assert torch.count_nonzero(d[:, :, mask == 0]) == 0
    assert torch.count_nonzero(d[:, :, mask == 1]) > 0
    assert not tiny.blocks[0].attn1.to_q.weight.requires_grad or tiny.blocks[0].attn1.to_q.weight.grad is None


def test_the_forward_stops_at_the_feature_block(tiny):
    ran = []
    handles = [b.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, b in enumerate(tiny.blocks)]
    try:
        ref = reference_from_model(tiny, _moving(), "block.0")
        ran.clear()
        x = torch.randn(1, 16, 4, 8, 8)
        guide = MoftGuide(tiny, ref, MoftGuidanceConfig(start=0.0, repeats=1), lambda x, t: backbone_forward(tiny, x, t))
        from moaw_core.engine.hooks import attach

        with attach(tiny, guide.hooks), torch.no_grad():
            guide(x, 0, 1, torch.tensor(800.0))
    finally:
        for h in handles:
            h.remove()
    assert ran == [0]


def test_guidance_loss_falls_and_beats_plain_sampling(tiny):
    src = _moving()
    ref = reference_from_model(tiny, src, "block.1")
    cfg = MoftGuidanceConfig(start=0.0, end=0.5, repeats=2, weight=100.0, step_size=0.5)
    _, guided = guided_sample(tiny, src.shape, ref, cfg, seed=2, steps=8)
    # step_size 0: the same passes record the loss along the plain trajectory, the latents are not moved
    plain_x, plain = guided_sample(tiny, src.shape, ref, MoftGuidanceConfig(start=0.0, end=0.5, weight=100.0,
                                                                           step_size=0.0), seed=2, steps=8)
    assert sorted(guided) == [0, 1, 2, 3]
    assert all(v[1] < v[0] for v in guided.values())
    assert guided[3][0] < plain[3][0]
    assert torch.equal(plain_x, generate(tiny, src.shape, seed=2, steps=8))


def test_weight_zero_is_bit_identical_to_plain_sampling(tiny):
    src = _moving()
    ref = reference_from_model(tiny, src, "block.1")
    out, losses = guided_sample(tiny, src.shape, ref, MoftGuidanceConfig(weight=0.0), seed=4, steps=6)
    assert losses == {} and torch.equal(out, generate(tiny, src.shape, seed=4, steps=6))


def test_channels_file_round_trip(tmp_path, tiny):
    fp = detect(tiny).fingerprint(tiny)
    chans = MoftChannels("block.1", 0.2, (3, 1), (0.5, -0.2), fp, ("pan_left", "pan_right"), 0.9, 4)
    path = chans.save(channels_path(tmp_path / "gen.safetensors"))
    assert path.name == "gen.moft.json" and MoftChannels.load(path) == chans
    ref = reference_from_model(tiny, _moving(), "block.1", channels=chans)
    assert ref.channels == (3, 1)
    with pytest.raises(ValueError, match="block.1"):
        reference_from_model(tiny, _moving(), "block.2", channels=chans)
    (tmp_path / "x.moft.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a MOFT channels file"):
        MoftChannels.load(tmp_path / "x.moft.json")
    with pytest.raises(FileNotFoundError):
        MoftChannels.load(tmp_path / "missing.moft.json")


def test_bad_inputs(tiny):
    src = _moving()
    ref = reference_from_model(tiny, src, "block.1")
    wide = build_wan(dim=256, num_layers=3, seed=1)
    with pytest.raises(ValueError, match="width"):
        guided_sample(wide, src.shape, ref, MoftGuidanceConfig(), steps=4)
    with pytest.raises(ValueError, match="empty guidance window"):
        MoftGuidanceConfig(start=0.4, end=0.2)
    with pytest.raises(ValueError, match="none of the 2"):
        guided_sample(tiny, src.shape, ref, MoftGuidanceConfig(start=0.6, end=0.9), steps=2)
    with pytest.raises(ValueError, match="mask: size 5x7"):
        guided_sample(tiny, src.shape, ref, MoftGuidanceConfig(mask=torch.ones(5, 7), start=0.0), steps=2)
    with pytest.raises(ValueError, match="4 latent frames"):
        guided_sample(tiny, (1, 16, 3, 8, 8), ref, MoftGuidanceConfig(start=0.0), steps=2)
    with pytest.raises(ValueError, match="latents"):
        reference_from_model(tiny, src[0], "block.1")
    with pytest.raises(ValueError, match="noise"):
        reference_from_model(tiny, src, "block.1", noise="pink")
    with pytest.raises(ValueError, match="channels"):
        build_reference(torch.randn(1, 4, 4, 4, 8), "block.1", 0.2, {}, channels=[9])
    with pytest.raises(TypeError, match="MoftGuidanceConfig"):
        MoftGuide(tiny, ref, {"weight": 1}, None)


def _planted(video):
    """Stand-in features with a known motion channel: channel 5 ramps with the clip's mean horizontal image
    shift (sign = pan direction, from the frames themselves), everything else is per-frame noise."""
    t = video.shape[0]
    g = torch.randn(1, t, 2, 2, 16, generator=torch.Generator().manual_seed(int(video.sum() * 1e3) % 2**31))
    gray = video.mean(-1)
    shift = torch.stack([(gray[i + 1, :, 1:] * gray[i, :, :-1]).mean() - (gray[i + 1, :, :-1] * gray[i, :, 1:]).mean()
                         for i in range(t - 1)]).mean()
    g[..., 5] += 2 * torch.sign(shift) * torch.arange(t, dtype=torch.float32)[None, :, None, None]
    return g


def test_pca_selection_finds_a_motion_channel_and_separates_held_out_pans():
    from moaw_core.moft.channels import dataset_series, select_channels, separation_accuracy
    from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset

    chans = select_channels(_planted, "block.0", 0.2, {}, k=1, clips=4, height=32, width=32)
    assert chans.channels == (5,) and chans.train_accuracy == 1.0
    held = build_motion_dataset(MotionDatasetConfig(classes=("pan_left", "pan_right"), clips_per_class=4, seed=1,
                                                    height=32, width=32))
    assert separation_accuracy(dataset_series(_planted, held.videos), held.labels, chans) == 1.0


@pytest.mark.parametrize("name", ["moaw_tiny_wan_generator", "moaw_tiny_wan_i2v"])
def test_bundled_generator_channels_separate_held_out_pans(name):
    """The shipped channels (chosen on seed-0 clips, block picked on seed-1 clips) on seed-2 clips; the same clips
    played backwards (each pan becomes the opposite one) must then be classified the other way round."""
    from moaw_core.engine import i2v
    from moaw_core.engine.checkpoint import load_backbone
    from moaw_core.moft.channels import MoftChannels, dataset_series, separation_accuracy
    from moaw_core.moft.diffusers import feature_grid
    from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset
    from moaw_core.tracking.codecs import PatchPCACodec

    path = ROOT / "models" / "generators" / f"{name}.safetensors"
    gen, meta = load_backbone(path, "generator")
    gen, layout = gen.eval(), i2v.layout_of(gen, meta)
    codec = PatchPCACodec.load(CODEC)
    chans = MoftChannels.load(channels_path(path))
    held = build_motion_dataset(MotionDatasetConfig(classes=("pan_left", "pan_right"), clips_per_class=4, seed=2))

    def features(v):
        cond = None if layout is None else i2v.image_condition(codec.encode, v[0], v.shape[0], layout)[0]
        return feature_grid(gen, codec.encode(v), chans.layer, chans.sigma, condition=cond)

    with torch.no_grad():
        series = dataset_series(features, held.videos, pooling=chans.pooling)
        backwards = dataset_series(features, held.videos.flip(1), pooling=chans.pooling)
    assert separation_accuracy(series, held.labels, chans) >= 0.9
    assert separation_accuracy(backwards, held.labels, chans) <= 0.1


def test_i2v_channel_file_carries_the_tuned_guidance():
    """The I2V file holds the demo's tuned MOFT settings; `guidance_config` builds them, with the mask only when the
    settings use one, and rejects settings MoftGuidanceConfig would reject."""
    path = channels_path(ROOT / "models" / "generators" / "moaw_tiny_wan_i2v.safetensors")
    chans = MoftChannels.load(path)
    assert chans.pooling == "signed" and chans.guidance
    mask = torch.ones(8, 8)
    cfg = chans.guidance_config(mask)
    assert isinstance(cfg, MoftGuidanceConfig) and cfg.loss == chans.guidance["loss"] and cfg.mask is mask
    assert cfg.weight == chans.guidance["weight"] and cfg.repeats == chans.guidance["repeats"]
    assert chans.guidance_config(weight=0.0).weight == 0.0
    from dataclasses import replace
    assert replace(chans, guidance={**chans.guidance, "mask": False}).guidance_config(mask).mask is None
    with pytest.raises(ValueError, match="empty guidance window"):
        replace(chans, guidance={**chans.guidance, "start": 0.5, "end": 0.5}).guidance_config()
