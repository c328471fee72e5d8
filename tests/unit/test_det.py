"""DeT on tiny random-init diffusers models: identity at zero init, what training touches, the loss falling,
the tracking loss, files and resuming, placement on CogVideoX / HunyuanVideo, and clear errors."""
import pytest
import torch
import torch.nn.functional as F

from moaw_core.det.adapter import DeTAdapters, TemporalConvAdapter, first_fraction
from moaw_core.det.files import TrainedDeT, load_adapters, save_adapters
from moaw_core.det.pipeline import adapters_for, first_frame_concat, generate_det, make_denoise, train_det
from moaw_core.det.placement import attach_det
from moaw_core.det.tracks import (LatentTracks, infer_temporal_stride, latent_tracks, query_points, source_tracks,
                                  tracking_loss, tracks_for_latent)
from moaw_core.det.train import DeTTrainConfig, evaluate_loss

D = pytest.importorskip("diffusers")
SHAPE = (1, 4, 4, 8, 8)
WIDTH = 32


@pytest.fixture(scope="module")
def wan():
    """A real diffusers Wan, width 32 (2 heads of 16), 2 blocks: seconds per test on a shared CPU."""
    torch.manual_seed(3)
    return D.WanTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4,
                                   text_dim=16, freq_dim=16, ffn_dim=64, num_layers=2, rope_max_seq_len=32).eval()


def _x0():
    """A smooth moving pattern: a latent the tiny model cannot already denoise perfectly."""
    t = torch.arange(4.0).view(1, 1, 4, 1, 1)
    y = torch.arange(8.0).view(1, 1, 1, 8, 1)
    x = torch.arange(8.0).view(1, 1, 1, 1, 8)
    c = torch.arange(4.0).view(1, 4, 1, 1, 1)
    return torch.sin(0.7 * (x - t) + 0.3 * y + 0.5 * c)


def test_zero_init_is_bit_identical(wan):
    a = adapters_for(wan)
    plain = generate_det(wan, None, SHAPE, seed=1, steps=2)
    assert torch.equal(plain, generate_det(wan, a, SHAPE, seed=1, steps=2, fraction=1.0))
    with torch.no_grad():
        a.module("block.0").conv_out.weight.normal_(std=0.05)
    changed = generate_det(wan, a, SHAPE, seed=1, steps=2, fraction=1.0)
    assert not torch.equal(plain, changed)
    assert torch.equal(plain, generate_det(wan, None, SHAPE, seed=1, steps=2))  # hooks gone after the run


def test_training_step_changes_only_adapter_weights(wan):
    before = {k: v.clone() for k, v in wan.state_dict().items()}
    a = adapters_for(wan)
    a0 = {k: v.clone() for k, v in a.state_dict().items()}
    train_det(wan, _x0(), DeTTrainConfig(steps=1, lr=1e-2, track_weight=0.0), adapters=a)
    assert all(torch.equal(before[k], v) for k, v in wan.state_dict().items())
    assert all(not p.requires_grad for p in wan.parameters())
    changed = [k for k, v in a.state_dict().items() if not torch.equal(a0[k], v)]
    assert any(k.endswith("conv_out.weight") for k in changed), changed


def test_loss_falls_on_a_tiny_model(wan):
    x0 = _x0()
    cfg = DeTTrainConfig(steps=10, lr=1e-2, track_weight=0.0, seed=0)
    a = adapters_for(wan)
    with attach_det(wan, a):
        before = evaluate_loss(make_denoise(wan, x0), x0, cfg, draws=4)
    train_det(wan, x0, cfg, adapters=a)
    with attach_det(wan, a):
        after = evaluate_loss(make_denoise(wan, x0), x0, cfg, draws=4)
    assert after < 0.85 * before, (before, after)  # measured 1.79 -> 1.35


def test_tracking_loss_static_is_zero_and_moving_is_not():
    static = torch.randn(1, 3, 1, 6, 6).expand(1, 3, 4, 6, 6).contiguous()
    pts = torch.tensor([[[8.0, 4.0]] * 4, [[20.0, 20.0]] * 4])  # 2 points standing still, 24x24 video
    vis = torch.ones(2, 4, dtype=torch.bool)
    lt = latent_tracks(pts, vis, (24, 24), (4, 6, 6))
    assert float(tracking_loss(static, lt)) == 0.0
    moving = static.clone()
    moving[:, :, 1:, 1, 2] += 1.0  # the first point's latent cell changes by 1 from frame 0 to 1, then holds
    # one step of squared change 1 (every channel) out of 2 points x 3 steps, visibility-weighted mean
    assert float(tracking_loss(moving, lt)) == pytest.approx(1.0 / 6.0)
    hidden = LatentTracks(lt.frames, lt.y, lt.x, torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]))
    assert float(tracking_loss(moving, hidden)) == 0.0  # the change falls on an invisible step


def test_latent_tracks_temporal_stride_and_layout_errors():
    pts = torch.zeros(3, 9, 2)
    vis = torch.ones(3, 9, dtype=torch.bool)
    lt = latent_tracks(pts, vis, (32, 32), (3, 4, 4), temporal_stride=4)  # 9 frames -> latent frames 0, 4, 8
    assert lt.y.shape == (3, 3)
    assert infer_temporal_stride(33, 9) == 4 and infer_temporal_stride(8, 8) == 1
    with pytest.raises(ValueError, match="9 tracked frames do not fit 4 latent frames"):
        latent_tracks(pts, vis, (32, 32), (4, 4, 4), temporal_stride=1)
    with pytest.raises(ValueError, match="cannot be the one encoded"):
        infer_temporal_stride(3, 8)
    with pytest.raises(ValueError, match=r"points \[N, T, 2\]"):
        latent_tracks(pts[..., 0], vis, (32, 32), (3, 4, 4))


def test_source_tracks_follow_a_moving_square():
    video = torch.zeros(5, 32, 32, 3)
    for t in range(5):
        video[t, 10:18, 6 + 2 * t:14 + 2 * t] = 1.0
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[11:17, 7:13] = True
    pts, vis = source_tracks(video, "lk", n_points=6, mask=mask, seed=0)
    assert pts.shape == (6, 5, 2) and vis[:, -1].any()
    dx = (pts[vis[:, -1], -1, 0] - pts[vis[:, -1], 0, 0]).mean()
    assert abs(float(dx) - 8.0) < 1.5
    lt = tracks_for_latent(video, (1, 16, 5, 8, 8), "lk", 6, mask)
    assert lt.x.shape == (6, 5)
    with pytest.raises(ValueError, match="foreground mask is empty"):
        query_points(32, 32, 4, torch.zeros(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="method"):
        source_tracks(video, "sift")


def test_save_load_round_trip_and_resume(tmp_path, wan):
    x0 = _x0()
    cfg = DeTTrainConfig(steps=4, lr=1e-2, track_weight=0.0)
    full, _, _ = train_det(wan, x0, cfg)
    half_cfg = DeTTrainConfig(steps=2, lr=1e-2, track_weight=0.0)
    half, state, _ = train_det(wan, x0, half_cfg)
    path = save_adapters(tmp_path / "a.safetensors", half, {"source": "test"}, state)
    loaded = load_adapters(path)
    assert isinstance(loaded, TrainedDeT) and loaded.info["source"] == "test" and loaded.state.step == 2
    assert loaded.adapters.settings() == half.settings() and loaded.adapters.fingerprint == half.fingerprint
    for k, v in half.state_dict().items():
        assert torch.equal(v, loaded.adapters.state_dict()[k])
    resumed, state2, _ = train_det(wan, x0, cfg, adapters=loaded.adapters, state=loaded.state)
    assert state2.step == 4 and [r["step"] for r in state2.losses] == [1, 2, 3, 4]
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-5, atol=1e-7)
    slim = TrainedDeT(half, {}, state).save(tmp_path / "b.safetensors", resumable=False)
    assert load_adapters(slim).state.optimizer is None and slim.stat().st_size < path.stat().st_size


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_adapters(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_adapters(bad)
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"moaw.kind": "tracker"})
    with pytest.raises(ValueError, match="not a DeT adapter file"):
        load_adapters(tmp_path / "other.safetensors")


def test_bad_inputs(wan):
    x0 = _x0()
    with pytest.raises(ValueError, match="width 256, this wan model has width 32"):
        with attach_det(wan, DeTAdapters(256, ["block.0"], "wan")):
            pass
    with pytest.raises(ValueError, match="trained for a 'cogvideox' model"):
        with attach_det(wan, DeTAdapters(WIDTH, ["block.0"], "cogvideox")):
            pass
    with pytest.raises(ValueError, match="not blocks of this"):
        with attach_det(wan, DeTAdapters(WIDTH, ["block.7"], "wan")):
            pass
    with pytest.raises(ValueError, match="tracks: the tracking loss"):
        train_det(wan, x0, DeTTrainConfig(steps=1, track_weight=0.1))
    lt = latent_tracks(torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool), (32, 32), (3, 8, 8))
    with pytest.raises(ValueError, match="made for 3 latent frames"):
        train_det(wan, x0, DeTTrainConfig(steps=1), tracks=lt)
    with pytest.raises(ValueError, match="steps"):
        train_det(wan, x0, DeTTrainConfig(steps=0))
    with pytest.raises(ValueError, match="x0: expected a latent video"):
        train_det(wan, x0[0], DeTTrainConfig(steps=1, track_weight=0))
    with pytest.raises(ValueError, match="do not hold a 4x4x4 video grid of width 128"):
        DeTAdapters(128, ["block.0"], "wan").delta("block.0", torch.zeros(1, 10, 128), (4, 4, 4))
    with pytest.raises(TypeError, match="no Moaw adapter"):
        adapters_for(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="fraction"):
        first_fraction(["block.0"], 0.0)


def test_first_fraction_matches_the_paper():
    names = [f"block.{i}" for i in range(42)]
    assert first_fraction(names) == names[:15]  # CogVideoX-5B: blocks 0-14 of 42
    assert first_fraction(names[:2]) == ["block.0"]


def test_first_frame_concat_layout():
    x0 = torch.randn(1, 16, 3, 4, 4)
    inp = first_frame_concat(torch.zeros_like(x0), x0)
    assert inp.shape == (1, 36, 3, 4, 4)  # Wan I2V: in_dim = C + 4 + C
    assert torch.equal(inp[:, 16:20, 0], torch.ones(1, 4, 4, 4)) and inp[:, 16:20, 1:].abs().sum() == 0
    assert torch.equal(inp[:, 20:, 0], x0[:, :, 0]) and inp[:, 20:, 1:].abs().sum() == 0


def _tiny_other(family):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if family == "cogvideox":
        m = D.CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                          time_embed_dim=8, text_embed_dim=16, num_layers=2, sample_width=8,
                                          sample_height=8, sample_frames=9, patch_size=2,
                                          temporal_compression_ratio=4, max_text_seq_length=5)
        return m, {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g)}, torch.randn(1, 3, 4, 8, 8, generator=g)
    m = D.HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=10,
                                         num_layers=1, num_single_layers=1, num_refiner_layers=1, patch_size=2,
                                         patch_size_t=1, guidance_embeds=False, text_embed_dim=16,
                                         pooled_projection_dim=8, rope_axes_dim=(2, 4, 4))
    kw = {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g),
          "encoder_attention_mask": torch.ones(1, 5, dtype=torch.bool), "pooled_projections": torch.randn(1, 8, generator=g)}
    return m, kw, torch.randn(1, 4, 3, 8, 8, generator=g)


@pytest.mark.parametrize("family", ["cogvideox", "hunyuan"])
def test_other_diffusers_families(family):
    m, kw, x = _tiny_other(family)
    m.eval()
    t = torch.tensor([500.0])
    with torch.no_grad():
        plain = m(x, timestep=t, return_dict=False, **kw)[0]
        a = adapters_for(m)
        with attach_det(m, a):
            assert torch.equal(plain, m(x, timestep=t, return_dict=False, **kw)[0])
            for name in a.layer_names:
                a.module(name).conv_out.weight.normal_(std=0.1)
            changed = m(x, timestep=t, return_dict=False, **kw)[0]
        assert not torch.allclose(plain, changed)
        assert torch.equal(plain, m(x, timestep=t, return_dict=False, **kw)[0])
    assert set(a.layer_names) == ({"block.0", "block.1"} if family == "cogvideox" else {"double.0", "single.0"})


def test_cli_train_resume_apply(tmp_path):
    """`python -m moaw_core det train|apply` on the bundled tiny generator and codec (a 32x32, 4-frame clip)."""
    import json

    from moaw_core.__main__ import main

    out = tmp_path / "a.safetensors"
    base = ["--synthetic", "object_right", "--size", "32", "32", "--frames", "4"]
    assert main(["det", "train", *base, "--steps", "1", "--points", "9", "--out", str(out)]) == 0
    assert main(["det", "train", *base, "--steps", "2", "--points", "9", "--out", str(out), "--resume"]) == 0
    trained = load_adapters(out)
    assert trained.state.step == 2 and trained.info["tracker"] == "lk" and trained.adapters.family == "wan"
    assert main(["det", "apply", *base, "--adapters", str(out), "--out", str(tmp_path), "--gen-steps", "1"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["runs"][0]) == {"seed", "plain", "det"} and (tmp_path / "det_seed0.gif").is_file()
    with pytest.raises(ValueError, match="--synthetic: expected one of"):
        main(["--debug", "det", "train", "--synthetic", "nope", "--steps", "1", "--out", str(out)])


@pytest.mark.parametrize("kernel,frames", [(3, 1), (3, 2), (3, 7), (5, 3), (1, 4)])
def test_token_layout_adapter_equals_conv1d(kernel, frames):
    torch.manual_seed(0)
    m = TemporalConvAdapter(24, 16, kernel).double()
    with torch.no_grad():
        m.conv_out.weight.normal_(std=0.2)
    x = torch.randn(2, frames, 5, 24, dtype=torch.float64)             # [B, T, S, C]
    ref_in = x.permute(0, 2, 3, 1).reshape(10, 24, frames)              # [B*S, C, T]
    pad = kernel // 2
    ref = F.conv1d(F.gelu(F.conv1d(ref_in, m.conv_in.weight, padding=pad)), m.conv_out.weight, padding=pad)
    ref = ref.reshape(2, 5, 24, frames).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert torch.allclose(m.tokens(x), ref, atol=1e-12)
        assert torch.allclose(m(ref_in), F.conv1d(F.gelu(F.conv1d(ref_in, m.conv_in.weight, padding=pad)),
                                                  m.conv_out.weight, padding=pad), atol=1e-12)
