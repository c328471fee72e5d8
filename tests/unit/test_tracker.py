"""MoawTracker: structural identity with its generator (Wan, SVD, CogVideoX), init, predict, save/load, errors."""
from __future__ import annotations

import json

import pytest
import torch

from moaw_core.engine.checkpoint import load_backbone, load_tracker, read_checkpoint, save_model
from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec, TrackEncoding
from moaw_core.tracking.tracker import MoawTracker, backbone_forward, build_wan
from moaw_core.tracking.tracks import flip_tracks

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _blocks(sd: dict, prefixes=("blocks.",)) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items() if k.startswith(prefixes)}


@pytest.fixture(scope="module")
def wan_pair():
    gen = build_wan(num_layers=2).eval()
    return gen, MoawTracker.from_generator(gen, 32).eval()


def test_wan_blocks_identical_to_generator(wan_pair):
    gen, tr = wan_pair
    assert _blocks(tr.backbone.state_dict()) == _blocks(gen.state_dict())
    for k, v in gen.state_dict().items():
        if k.startswith("blocks."):
            assert torch.equal(v, tr.backbone.state_dict()[k])
    from moaw_core.engine.adapters import detect
    assert detect(tr.backbone).fingerprint(tr.backbone) == detect(gen).fingerprint(gen)


def test_wan_projection_init(wan_pair):
    gen, tr = wan_pair
    assert gen.config.in_channels == 16 and gen.patch_embedding.weight.shape[1] == 16  # generator untouched
    w = tr.backbone.patch_embedding.weight
    assert w.shape[1] == 48 and tr.backbone.config.in_channels == 48 and tr.backbone.config.out_channels == 32
    assert torch.equal(w[:, 32:], gen.patch_embedding.weight) and not w[:, :32].any()  # video channels get it
    alt = MoawTracker.from_generator(gen, 32, proj_init="track").backbone.patch_embedding.weight
    assert torch.equal(alt[:, :16], gen.patch_embedding.weight) and not alt[:, 16:].any()
    with pytest.raises(ValueError, match="proj_init"):
        MoawTracker.from_generator(gen, 32, proj_init="both")
    # output head: track channel c starts as the generator's channel c % 16
    x = torch.randn(1, 16, 2, 4, 4)
    t = torch.tensor([700.0])
    with torch.no_grad():
        g = backbone_forward(gen, x, t)
        o = tr(torch.randn(1, 32, 2, 4, 4), x, t)  # at init the tracker is the generator looking at the video
    assert torch.allclose(o[:, :16], g, atol=1e-5) and torch.allclose(o[:, 16:], g, atol=1e-5)


def test_other_families_keep_blocks():
    from diffusers import CogVideoXTransformer3DModel, UNetSpatioTemporalConditionModel

    svd = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=32,
        num_attention_heads=(2, 4), in_channels=4, out_channels=4, layers_per_block=1, sample_size=8,
        projection_class_embeddings_input_dim=24, addition_time_embed_dim=8).eval()
    cog = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
                                      time_embed_dim=8, text_embed_dim=8, num_layers=1, sample_width=8,
                                      sample_height=8, sample_frames=5, patch_size=2, max_text_seq_length=4).eval()
    for gen, blocks in ((svd, ("down_blocks.", "up_blocks.", "mid_block.")), (cog, ("transformer_blocks.",))):
        tr = MoawTracker.from_generator(gen, 8).eval()
        assert _blocks(tr.backbone.state_dict(), blocks) == _blocks(gen.state_dict(), blocks)
        with torch.no_grad():
            out = tr(torch.randn(1, 8, 2, 8, 8), torch.randn(1, 4, 2, 8, 8), torch.tensor([500.0]))
        assert out.shape == (1, 8, 2, 8, 8)


def test_predict_and_save_load_identical(tmp_path, wan_pair):
    _, tr = wan_pair
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    enc = TrackEncoding(16.0, codec.codec_id, 16)
    video = torch.rand(2, 16, 16, 3)
    lat = codec.encode(video)
    a = tr.predict(lat, steps=2, seed=3)
    assert a.shape == (1, 32, 2, 4, 4)
    assert torch.equal(a, tr.predict(lat, steps=2, seed=3))
    path = save_model(tmp_path / "t.safetensors", tr.backbone, "tracker", codec.codec_id, enc, 16,
                      {"parameterization": "flow", "steps": 2}, "test", 7)
    sd, meta = read_checkpoint(path)
    assert "head.modulation" in sd and meta["moaw.kind"] == "tracker" and meta["moaw.step"] == "7"
    from moaw_core.engine.adapters import detect
    assert json.loads(meta["moaw.fingerprint"]) == detect(tr.backbone).fingerprint(tr.backbone)
    back, enc2, _ = load_tracker(path)
    assert enc2 == enc and (back.track_channels, back.video_channels) == (32, 16)
    assert torch.allclose(back.predict(lat, steps=2, seed=3), a, atol=1e-6)
    tracks = back.predict_tracks(video, codec, TrackCodec(codec, enc), steps=1)
    assert tracks.xy.shape == (2, 16, 16, 2)
    # the eval verb on one tiny held-out clip: every method reports the same metrics
    from moaw_core.cli.evaluate import evaluate_synthetic, markdown
    from moaw_core.data.synth import SynthConfig
    codec.save(tmp_path / "codec.safetensors")
    res = evaluate_synthetic(str(path), str(tmp_path / "codec.safetensors"), num_clips=1, grid=4,
                             cfg=SynthConfig(frames=2, height=16, width=16))
    assert set(res["methods"]) == {"tracker", "zero", "dis", "lk"}
    assert res["methods"]["zero"]["mean_position_error"] >= 0 and "| tracker |" in markdown(res, None)


def test_bad_inputs(tmp_path, wan_pair):
    gen, tr = wan_pair
    with pytest.raises(ValueError, match="video_latents"):
        tr.predict(torch.zeros(1, 8, 2, 4, 4))
    with pytest.raises(ValueError, match="video"):
        tr.predict_tracks(torch.zeros(2, 16, 16), None, None)
    with pytest.raises(TypeError, match="expected one of"):
        MoawTracker.from_generator(torch.nn.Linear(2, 2), 8)
    with pytest.raises(ValueError, match="in_channels"):
        MoawTracker(gen, 32, 16)
    with pytest.raises(FileNotFoundError):
        load_tracker(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not a Moaw model file"):
        load_tracker(tmp_path / "foreign.safetensors")
    path = save_model(tmp_path / "g.safetensors", gen, "generator", "c")
    with pytest.raises(ValueError, match="expected a tracker"):
        load_tracker(path)
    assert load_backbone(path, "generator")[0].config.num_layers == 2
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_checkpoint(tmp_path / "trunc.safetensors")
    from moaw_core.engine.checkpoint import sampling_defaults
    for steps in (0, -1, 2.5):
        with pytest.raises(ValueError, match="steps: expected an integer >= 1"):
            sampling_defaults({"moaw.schedule": '{"steps": 4}'}, steps)
    assert sampling_defaults({"moaw.schedule": '{"steps": 4}'})["steps"] == 4
    with pytest.raises(ValueError, match="moaw.schedule metadata is not valid JSON"):
        sampling_defaults({"moaw.schedule": "{"})


def test_predict_tracks_tiled(wan_pair):
    _, tr = wan_pair
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    tc = TrackCodec(codec, TrackEncoding(16.0, codec.codec_id, 16))
    video = torch.rand(2, 16, 16, 3)
    whole = tr.predict_tracks(video, codec, tc, steps=1, init_noise="zeros")
    one = tr.predict_tracks_tiled(video, codec, tc, tile=16, overlap=0, steps=1, init_noise="zeros")
    assert torch.allclose(one.xy, whole.xy, atol=1e-5) and torch.equal(one.visible, whole.visible)
    big = torch.rand(2, 16, 40, 3)
    tiled = tr.predict_tracks_tiled(big, codec, tc, tile=16, overlap=8, steps=1, init_noise="zeros")
    assert tiled.xy.shape == (2, 16, 40, 2) and torch.isfinite(tiled.xy).all()
    # the left window alone decides the pixels no other window covers
    left = tr.predict_tracks(big[:, :, :16].contiguous(), codec, tc, steps=1, init_noise="zeros")
    assert torch.allclose(tiled.displacement()[:, :, :8], left.displacement()[:, :, :8], atol=1e-5)
    with pytest.raises(ValueError, match="tile"):
        tr.predict_tracks_tiled(torch.rand(2, 8, 8, 3), codec, tc, tile=16)
    with pytest.raises(ValueError, match="overlap"):
        tr.predict_tracks_tiled(big, codec, tc, tile=16, overlap=16)
    with pytest.raises(ValueError, match="video"):
        tr.predict_tracks_tiled(torch.rand(16, 16, 3), codec, tc)


def test_predict_tracks_long_and_predict_cli(tmp_path, wan_pair):
    _, tr = wan_pair
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    enc = TrackEncoding(16.0, codec.codec_id, 16)
    tc = TrackCodec(codec, enc)
    kw = {"steps": 1, "init_noise": "zeros"}
    video = torch.rand(3, 16, 16, 3)
    one = tr.predict_tracks(video, codec, tc, **kw)
    same = tr.predict_tracks_long(video, codec, tc, window=4, work_height=None, **kw)  # one window, own size
    assert torch.allclose(same.xy, one.xy, atol=1e-4) and torch.equal(same.visible, one.visible)
    clip = torch.rand(7, 32, 48, 3)
    long = tr.predict_tracks_long(clip, codec, tc, window=3, work_height=16, refine=False, **kw)
    assert long.xy.shape == (7, 32, 48, 2) and torch.isfinite(long.xy).all()
    single = tr.predict_tracks_long(clip, codec, tc, window=3, work_height=16, batch=1, refine=False, **kw)
    assert torch.allclose(single.xy, long.xy, atol=1e-2)  # one window a call; batched matmuls differ in the last bits
    refined = tr.predict_tracks_long(clip, codec, tc, window=3, work_height=16, **kw)  # + a 32-px refinement pass
    assert refined.xy.shape == long.xy.shape and torch.isfinite(refined.xy).all()
    assert not torch.allclose(refined.xy, long.xy, atol=1e-2)
    # the base windows and the refinement's residuals are box-filtered by default (base_smooth / refine_smooth);
    # unsmoothed, the refinement keeps the base pass's visibility exactly
    raw = tr.predict_tracks_long(clip, codec, tc, window=3, work_height=16, base_smooth=0, refine_smooth=0, **kw)
    assert torch.equal(raw.visible, long.visible) and not torch.allclose(raw.xy, long.xy, atol=1e-2)
    assert not torch.allclose(raw.xy, refined.xy, atol=1e-3)
    own = tr.predict_tracks_long(video, codec, tc, window=4, work_height=None, base_smooth=0, **kw)
    assert torch.equal(own.xy, same.xy)  # no refinement level follows: the base is not smoothed
    for bad in ({"base_smooth": -1}, {"refine_smooth": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            tr.predict_tracks_long(clip, codec, tc, window=3, work_height=16, **bad, **kw)
    pair = torch.rand(2, 3, 16, 16, 3)
    both = tr.predict_tracks_batch(pair, codec, tc, **kw)
    assert len(both) == 2 and torch.allclose(both[1].xy, tr.predict_tracks(pair[1], codec, tc, **kw).xy, atol=1e-4)
    with pytest.raises(ValueError, match="videos"):
        tr.predict_tracks_batch(pair[0], codec, tc, **kw)
    # flip averaging: the mean of the clip's tracks and its mirror's tracks mirrored back
    avg = tr.predict_tracks_batch(pair, codec, tc, flip_average=True, **kw)
    plain, mirrored = both[0], flip_tracks(tr.predict_tracks(pair[0].flip(2), codec, tc, **kw))
    assert torch.allclose(avg[0].xy, (plain.xy + mirrored.xy) / 2, atol=1e-3)
    assert torch.equal(avg[0].visible, plain.visible | mirrored.visible)
    assert not torch.allclose(avg[0].xy, plain.xy, atol=1e-3)  # the mirror's estimate does count
    with pytest.raises(ValueError, match="video"):
        tr.predict_tracks_long(torch.rand(7, 32, 48), codec, tc)
    # the CLI verb on a folder of frames longer than the window, at the frames' own size
    cv2 = pytest.importorskip("cv2")
    path = save_model(tmp_path / "t.safetensors", tr.backbone, "tracker", codec.codec_id, enc, 16,
                      {"parameterization": "flow", "loss": "l1", "steps": 1, "init_noise": "zeros"}, "test", 1)
    codec.save(tmp_path / "codec.safetensors")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(5):
        cv2.imwrite(str(frames / f"{i:03d}.png"), (torch.rand(16, 24, 3) * 255).byte().numpy())
    from safetensors.torch import load_file

    from moaw_core.__main__ import build_parser
    from moaw_core.cli.predict import main
    out = tmp_path / "tracks.safetensors"
    args = build_parser().parse_args(["predict", str(frames), "--tracker", str(path), "--codec",
                                      str(tmp_path / "codec.safetensors"), "--window", "3", "--work-height", "16",
                                      "--out", str(out)])

    assert main(args) == 0 and load_file(str(out))["xy"].shape == (5, 16, 24, 2)
    args.window = 1
    with pytest.raises(ValueError, match="window"):
        main(args)


def test_single_token_cross_attention_is_exact_and_falls_back():
    """The tracker's Wan cross-attentions skip the attention over the one null-text token (exact); a longer
    context goes through the processor it replaced; the generator passed in is not patched."""
    import copy

    from moaw_core.engine.backbones import SingleTokenCrossAttention

    gen = build_wan(num_layers=2).eval()
    tr = MoawTracker.from_generator(gen, 32).eval()
    assert all(isinstance(b.attn2.processor, SingleTokenCrossAttention) for b in tr.backbone.blocks)
    assert not any(isinstance(b.attn2.processor, SingleTokenCrossAttention) for b in gen.blocks)
    plain = copy.deepcopy(tr)
    for b in plain.backbone.blocks:
        b.attn2.set_processor(b.attn2.processor.fallback)
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 32, 3, 8, 8, generator=g), torch.randn(2, 16, 3, 8, 8, generator=g)
    t = torch.tensor([1000.0, 300.0])
    with torch.no_grad():
        assert torch.allclose(tr(x, v, t), plain(x, v, t), atol=1e-5)
        ctx = torch.randn(2, 2, 4096, generator=g)  # two text tokens: the full attention
        inp = torch.cat([x, v], 1)
        a = tr.backbone(inp, t, encoder_hidden_states=ctx, return_dict=False)[0]
        b = plain.backbone(inp, t, encoder_hidden_states=ctx, return_dict=False)[0]
        assert torch.allclose(a, b, atol=1e-5)
        one = torch.randn(2, 1, 4096, generator=g)  # one (non-null) token: the shortcut is still exact
        assert torch.allclose(tr.backbone(inp, t, encoder_hidden_states=one, return_dict=False)[0],
                              plain.backbone(inp, t, encoder_hidden_states=one, return_dict=False)[0], atol=1e-5)


def test_average_model_files(tmp_path, wan_pair):
    """The mean of two exports is the elementwise mean (fp16 files stay fp16), with the first file's metadata, the new
    step and the file names; the script does the same; a different model or no file is refused."""
    import subprocess
    import sys
    from pathlib import Path

    from moaw_core.engine.checkpoint import average_model_files

    gen = wan_pair[0]
    a = save_model(tmp_path / "a.safetensors", gen, "generator", "c", step=100, dtype=torch.float16)
    other = build_wan(num_layers=2).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    b = save_model(tmp_path / "b.safetensors", other, "generator", "c", step=200, dtype=torch.float16)
    out = average_model_files([a, b], tmp_path / "m.safetensors", step=200, note="test")
    (sa, _), (sb, _), (sm, meta) = (read_checkpoint(p) for p in (a, b, out))
    k = next(k for k in sm if k.startswith("blocks."))
    assert sm[k].dtype == torch.float16
    assert torch.allclose(sm[k].float(), (sa[k].float() + sb[k].float()) / 2, atol=2e-3)
    assert meta["moaw.step"] == "200" and meta["moaw.averaged_from"] == "test mean of: a.safetensors b.safetensors"
    assert load_backbone(out, "generator")[0].config.num_layers == 2
    script = Path(__file__).resolve().parents[2] / "scripts" / "average_exports.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "s.safetensors"), str(a), str(b)], check=True,
                   capture_output=True)
    assert torch.equal(read_checkpoint(tmp_path / "s.safetensors")[0][k], sm[k])
    small = save_model(tmp_path / "small.safetensors", build_wan(num_layers=1).eval(), "generator", "c")
    with pytest.raises(ValueError, match="not the same kind of model"):
        average_model_files([a, small], tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="at least one"):
        average_model_files([], tmp_path / "x.safetensors")
