"""Helper nodes of the demo workflow, in-process on the real host: codec VAE with the core VAEEncode/VAEDecode,
synthetic source video, empty conditioning, tracks preview."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def codec_vae(pack, tmp_path_factory):
    from moaw_core.tracking.codecs import PatchPCACodec
    from moaw_core.data.sources import synthetic_source

    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    PatchPCACodec.fit(torch.stack([synthetic_source(i).video for i in range(3)]), 16).save(path)
    return pack.nodes.demo_vae.CodecVAE(PatchPCACodec.load(path))


def test_synthetic_video_node(pack):
    frames = pack.nodes.synthetic.MoawSyntheticVideo.execute(seed=1, frames=5, width=48, height=32, camera="pan_left",
                                                             objects="none", speed=1.5).args[0]
    assert frames.shape == (5, 32, 48, 3) and 0 <= float(frames.min()) and float(frames.max()) <= 1
    with pytest.raises(ValueError, match="camera"):
        pack.nodes.synthetic.MoawSyntheticVideo.execute(seed=1, frames=5, width=48, height=32, camera="dolly",
                                                        objects="none", speed=1.0)


def test_codec_vae_through_core_nodes(pack, codec_vae):
    comfy_nodes = H.comfy_nodes()

    frames = pack.nodes.synthetic.MoawSyntheticVideo.execute(seed=7, frames=4, width=64, height=64, camera="static",
                                                             objects="right", speed=2.0).args[0]
    (latent,) = comfy_nodes.VAEEncode().encode(codec_vae, frames)
    assert latent["samples"].shape == (1, 16, 4, 16, 16)
    (back,) = comfy_nodes.VAEDecode().decode(codec_vae, latent)
    assert back.shape == frames.shape
    mse = float(((back - frames) ** 2).mean())
    assert 10 * torch.log10(torch.tensor(1.0 / mse)) > 20, "the codec VAE must reconstruct (PSNR > 20 dB)"
    # VAE space differs from the codec space by Wan 2.1's latent format, so the model sees codec latents.
    model_space = codec_vae.latent_format.process_in(latent["samples"])
    assert torch.allclose(model_space, codec_vae.codec.encode(frames), atol=1e-4)


def test_codec_vae_bad_inputs(codec_vae):
    with pytest.raises(ValueError, match="multiple of 4"):
        codec_vae.encode(torch.zeros(2, 30, 32, 3))
    with pytest.raises(ValueError, match="video latent"):
        codec_vae.decode(torch.zeros(1, 4, 2, 8, 8))


def test_empty_conditioning(pack):
    cond = pack.nodes.conditioning.MoawEmptyConditioning.execute(width=64, length=3).args[0]
    assert cond[0][0].shape == (1, 3, 64) and not cond[0][0].any() and cond[0][1] == {}


def test_tracks_preview(pack, codec_vae, tmp_path):
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    path = save_model(tmp_path / "t.safetensors", MoawTracker.from_generator(build_wan(num_layers=1), 32).backbone,
                      "tracker", PATCH_PCA_ID, TrackEncoding(24.0, PATCH_PCA_ID, 16), video_channels=16)
    tracker = pack.nodes.tracker.load_tracker(str(path))
    motion, dv = pack.nodes.tracks_preview.MoawTracksToImage.execute(
        tracker=tracker, vae=codec_vae, tracks={"samples": torch.zeros(1, 32, 3, 8, 8)}).args
    assert motion.shape == (3, 32, 32, 3) and dv.shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="32 channels"):
        pack.nodes.tracks_preview.MoawTracksToImage.execute(tracker=tracker, vae=codec_vae,
                                                            tracks={"samples": torch.zeros(1, 16, 3, 8, 8)})
