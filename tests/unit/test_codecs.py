"""Codecs: PatchPCACodec round trip (PSNR bound), save/load, track latents round trip, bad inputs."""
from __future__ import annotations

import pytest
import torch

from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec, TrackEncoding, psnr
from moaw_core.data.synth import SynthConfig, render_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

CFG = SynthConfig(frames=4, height=16, width=16)


@pytest.fixture(scope="module")
def clips():
    return [render_clip(s, CFG) for s in range(6)]


@pytest.fixture(scope="module")
def codec(clips):
    return PatchPCACodec.fit(torch.stack([c.video for c in clips[:4]]), channels=16)


def test_shapes_and_psnr(codec, clips):
    video = clips[5].video
    z = codec.encode(video)
    assert z.shape == (1, 16, 4, 4, 4)
    rec = codec.decode(z)
    assert rec.shape == (1, 4, 16, 16, 3)
    assert psnr(video[None], rec) > 24.0  # held-out clip; 16 of 48 patch dims
    full = PatchPCACodec.fit(video, channels=48)  # all components: exact up to float error
    assert psnr(video, full.decode(full.encode(video))[0]) > 60.0


def test_batched_encode_matches_single(codec, clips):
    v = torch.stack([clips[0].video, clips[1].video])
    z = codec.encode(v)
    assert torch.allclose(z[1:], codec.encode(clips[1].video), atol=1e-5)


def test_save_load(tmp_path, codec, clips):
    codec.save(tmp_path / "c.safetensors")
    back = PatchPCACodec.load(tmp_path / "c.safetensors")
    assert torch.equal(back.encode(clips[0].video), codec.encode(clips[0].video))


def test_track_codec_roundtrip(codec, clips):
    enc = TrackEncoding(max_disp=16.0, codec_id=codec.codec_id, latent_channels=16)
    tc = TrackCodec(codec, enc)
    tracks = clips[5].tracks
    z = tc.encode(tracks)
    assert z.shape == (1, 32, 4, 4, 4)
    back = tc.decode(z)[0]
    assert back.xy.shape == tracks.xy.shape
    # a lossy codec, but far better than ignoring motion altogether
    err = (back.xy - tracks.xy).norm(dim=-1)[1:].mean()
    zero = (tracks.xy - tracks.xy[:1]).norm(dim=-1)[1:].mean()
    assert err < max(0.5 * zero, 0.5)
    assert TrackEncoding.from_json(enc.to_json()) == enc


def test_bad_inputs(tmp_path, codec):
    with pytest.raises(ValueError, match="video"):
        codec.encode(torch.zeros(4, 16, 16))
    with pytest.raises(ValueError, match="divisible"):
        codec.encode(torch.zeros(2, 10, 16, 3))
    with pytest.raises(TypeError, match="video"):
        codec.encode([1, 2])
    with pytest.raises(ValueError, match="latents"):
        codec.decode(torch.zeros(1, 8, 2, 4, 4))
    with pytest.raises(FileNotFoundError):
        PatchPCACodec.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        PatchPCACodec.load(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="codec"):
        TrackCodec(codec, TrackEncoding(16.0, "other", 16))


def test_diffusers_vae_codec_shapes():
    from diffusers import AutoencoderKLTemporalDecoder, AutoencoderKLWan

    from moaw_core.tracking.codecs import DiffusersVAECodec
    video = torch.rand(5, 16, 16, 3)
    wan = DiffusersVAECodec(AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                             temperal_downsample=[False, True, True]).eval())
    z = wan.encode(video)
    assert z.shape == (1, 16, 2, 2, 2) and (wan.spatial_factor, wan.temporal_factor) == (8, 4)
    assert wan.decode(z).shape == (1, 5, 16, 16, 3)
    svd = DiffusersVAECodec(AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2, latent_channels=4,
        layers_per_block=1).eval())

    z = svd.encode(video)
    assert z.shape == (1, 4, 5, 8, 8) and svd.decode(z).shape == (1, 5, 16, 16, 3)
    with pytest.raises(TypeError, match="AutoencoderKLWan"):
        DiffusersVAECodec(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="latents"):
        wan.decode(torch.zeros(1, 4, 2, 2, 2))


def test_codec_channel_weights_give_pixel_mse(codec):
    from moaw_core.engine.schedule import codec_channel_weights
    z1, z2 = torch.randn(1, 16, 2, 3, 3), torch.randn(1, 16, 2, 3, 3)
    pixel_sse = ((codec.decode(z1) - codec.decode(z2)) ** 2).sum()
    w = codec_channel_weights(codec.scale) * (codec.scale ** 2).mean()
    latent_sse = ((z1 - z2) ** 2 * w.view(1, -1, 1, 1, 1)).sum()
    assert torch.allclose(pixel_sse, latent_sse, rtol=1e-4)
    assert codec_channel_weights(codec.scale, 2).shape == (32,)
