"""The image-to-video generator in ComfyUI: native detection of the 2C + 4 channel layout, MoawImageToVideo's
conditioning equals the library's (through ComfyUI's own WAN21.concat_cond and latent format), and sampling with
the node's noise mask holds the given frame."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pack = H.load_pack()
    from moaw_core.data.sources import synthetic_source
    from moaw_core.engine import i2v
    from moaw_core.engine.checkpoint import read_checkpoint, save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, PatchPCACodec
    from moaw_core.tracking.tracker import build_wan

    d = tmp_path_factory.mktemp("i2v")
    codec = PatchPCACodec.fit(torch.stack([synthetic_source(i).video for i in range(2)]), 16)
    wide, layout = i2v.widen_for_i2v(build_wan(num_layers=1, seed=0))
    torch.manual_seed(0)
    with torch.no_grad():  # give the condition channels weight so they matter here
        wide.patch_embedding.weight[:, 16:] = 0.05 * torch.randn_like(wide.patch_embedding.weight[:, 16:])
    path = save_model(d / "g.safetensors", wide, "generator", PATCH_PCA_ID, extra_meta={"moaw.i2v": layout.to_json()})
    patcher = H.load_native(read_checkpoint(path)[0])
    image = synthetic_source(3, height=40, width=56).video[0]
    return pack, patcher, codec, layout, image


def test_detected_natively_as_wan_with_extra_channels(setup):
    _, patcher, _, _, _ = setup
    assert type(patcher.model).__name__ == "WAN21"
    assert patcher.model.diffusion_model.patch_embedding.weight.shape[1] == 36


@pytest.mark.parametrize("fill", ["repeat", "gray"])
def test_node_conditioning_equals_the_library_condition(setup, fill):
    pack, patcher, codec, layout, image = setup
    from moaw_core.engine import i2v

    vae = pack.nodes.demo_vae.CodecVAE(codec)
    pos, neg, latent = pack.nodes.image_to_video.MoawImageToVideo.execute(
        positive=[[torch.zeros(1, 1, 4096), {}]], negative=[[torch.zeros(1, 1, 4096), {}]], vae=vae,
        start_image=image[None], width=32, height=32, length=5, batch_size=2, fill=fill, keep_first_frame=True).args
    opts = pos[0][1]
    assert set(opts) >= {"concat_latent_image", "concat_mask"} and neg[0][1].keys() == opts.keys()
    noise = torch.zeros(2, 16, 5, 8, 8)
    got = patcher.model.concat_cond(noise=noise, device=torch.device("cpu"), **opts)  # ComfyUI's own code
    small = i2v.resize_image(image, 32, 32)
    want, want_lat = i2v.image_condition(codec.encode, small, 5, i2v.I2VLayout(16, fill))
    assert got.shape == (2, 20, 5, 8, 8)
    assert torch.allclose(got, want.expand_as(got), atol=1e-4), float((got - want).abs().max())
    assert latent["samples"].shape == (2, 16, 5, 8, 8) and latent["noise_mask"].shape == (1, 1, 5, 8, 8)
    assert torch.allclose(vae.latent_format.process_in(latent["samples"][:1, :, :1]), want_lat[:, :, :1], atol=1e-4)


def test_ksampler_with_the_node_keeps_the_first_frame(setup):
    pack, patcher, codec, _, image = setup
    import comfy.sample

    vae = pack.nodes.demo_vae.CodecVAE(codec)
    empty = [[torch.zeros(1, 1, 4096), {}]]
    pos, neg, latent = pack.nodes.image_to_video.MoawImageToVideo.execute(
        positive=empty, negative=empty, vae=vae, start_image=image[None], width=32, height=32, length=4,
        batch_size=1, fill="repeat", keep_first_frame=True).args
    noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(0))
    out = comfy.sample.sample(patcher, noise, 3, 1.0, "euler", "simple", pos, neg, latent["samples"],
                              noise_mask=latent["noise_mask"], seed=0, disable_pbar=True)
    assert torch.allclose(out[:, :, 0], latent["samples"][:, :, 0], atol=1e-4)
    assert not torch.allclose(out[:, :, 1], latent["samples"][:, :, 1], atol=1e-2)
    with pytest.raises(ValueError, match="image"):
        pack.nodes.image_to_video.MoawImageToVideo.execute(
            positive=empty, negative=empty, vae=vae, start_image=torch.zeros(2, 2), width=32, height=32, length=4,
            batch_size=1, fill="repeat", keep_first_frame=True)
