"""MOFT on the native ComfyUI Wan MODEL (tiny random weights loaded under inference mode, as the server does):
reference, MoftGuider with ComfyUI's own samplers, weight 0 = plain, mask, bad inputs, the MODEL untouched."""
import copy

import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def host():
    comfy = H.import_comfy()
    H.load_pack()
    import moaw_pack.nodes.moft_host as mh

    with torch.inference_mode():
        model = H.load_native(H.tiny_wan_state_dict(num_layers=3, seed=0))
        other = H.load_native(H.tiny_wan_state_dict(num_layers=3, dim=256, seed=1))
    g = torch.Generator().manual_seed(0)
    cond = [[torch.randn(1, 4, 4096, generator=g), {}]]
    # a source whose content moves right by one latent pixel per frame
    base = torch.randn(1, 16, 1, 8, 24, generator=g)
    src = torch.cat([base[..., i:i + 8] for i in range(4)], dim=2)
    return comfy, mh, model, other, cond, src


def _sigmas(comfy, model, steps=8):
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps)


def _run(comfy, guider, cond, src, steps=8, sampler="euler", seed=3):
    noise = torch.randn(src.shape, generator=torch.Generator().manual_seed(seed))
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    with torch.inference_mode():
        return guider.sample(noise, torch.zeros_like(src), comfy.samplers.sampler_object(sampler),
                             _sigmas(comfy, guider.model_patcher, steps), seed=seed, disable_pbar=True)


def _reference(mh, model, cond, src, **kw):
    with torch.inference_mode():
        return mh.comfy_reference(model, {"samples": src}, cond, "block.1", 0.2, **kw)


def test_reference_shape_and_static_video_gives_zero(host):
    comfy, mh, model, _, cond, src = host
    ref = _reference(mh, model, cond, src)
    assert ref.values.shape == (4, 5) and ref.layer == "block.1"  # 4 % of 128 channels
    assert float(ref.values.abs().max()) > 1e-3
    static = src[:, :, :1].expand_as(src).contiguous()
    zero = _reference(mh, model, cond, static, channels=None)
    assert float(zero.values.abs().max()) < 1e-4


def test_weight_zero_is_bit_identical_to_plain_sampling(host):
    comfy, mh, model, _, cond, src = host
    from moaw_core.moft import MoftGuidanceConfig

    ref = _reference(mh, model, cond, src)
    plain = _run(comfy, comfy.samplers.CFGGuider(model), cond, src)
    zero = _run(comfy, mh.MoftGuider(model, ref, MoftGuidanceConfig(weight=0.0)), cond, src)
    assert torch.equal(plain, zero)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_guidance_lowers_the_loss_and_leaves_the_model_untouched(host, sampler):
    comfy, mh, model, _, cond, src = host
    from moaw_core.moft import MoftGuidanceConfig

    before = copy.deepcopy(model.model_options)
    ref = _reference(mh, model, cond, src)
    guider = mh.MoftGuider(model, ref, MoftGuidanceConfig(start=0.0, end=0.5, repeats=3, weight=50.0,
                                                          step_size=0.5))
    out = _run(comfy, guider, cond, src, sampler=sampler)
    plain = _run(comfy, comfy.samplers.CFGGuider(model), cond, src, sampler=sampler)
    assert sorted(guider.losses) == [0, 1, 2, 3]
    assert torch.isfinite(out).all() and not torch.equal(out, plain)
    for losses in guider.losses.values():  # every update lowers the loss of its step
        assert losses[-1] < losses[0]
    assert model.model_options == before
    assert not model.model_options.get("transformer_options", {}).get("patches_replace")
    assert all(not m.__dict__.get("weight_function") and not m.__dict__.get("bias_function")
               for m in model.model.diffusion_model.modules())


def test_gradient_is_zero_outside_the_mask(host):
    comfy, mh, model, _, cond, src = host
    from moaw_core.moft import MoftGuidanceConfig

    mask = torch.zeros(8, 8)
    mask[2:6, 1:5] = 1
    ref = _reference(mh, model, cond, src)
    seen = []

    class Observed(mh.MoftGuider):
        def guide(self, x, sigma, extra_args, step):
            new = super().guide(x, sigma, extra_args, step)
            seen.append((new - x)[0])
            return new

    _run(comfy, Observed(model, ref, MoftGuidanceConfig(start=0.0, end=0.3, weight=50.0, mask=mask)), cond, src)
    assert seen
    for d in seen:
        assert torch.count_nonzero(d[:, :, mask == 0]) == 0
        assert torch.count_nonzero(d[:, :, mask == 1]) > 0


def test_bad_inputs_give_clear_errors(host):
    comfy, mh, model, other, cond, src = host
    from moaw_core.moft import MoftGuidanceConfig

    ref = _reference(mh, model, cond, src)
    with pytest.raises(ValueError, match="width"):
        mh.MoftGuider(other, ref, MoftGuidanceConfig())
    with pytest.raises(ValueError, match="empty guidance window"):
        MoftGuidanceConfig(start=0.5, end=0.5)
    with pytest.raises(ValueError, match="none of the 2"):
        _run(comfy, mh.MoftGuider(model, ref, MoftGuidanceConfig(start=0.6, end=0.9)), cond, src, steps=2)
    with pytest.raises(ValueError, match="mask: size 5x9"):
        _run(comfy, mh.MoftGuider(model, ref, MoftGuidanceConfig(mask=torch.ones(5, 9))), cond, src)
    with pytest.raises(ValueError, match="4 latent frames"):
        _run(comfy, mh.MoftGuider(model, ref, MoftGuidanceConfig()), cond, src[:, :, :3])
    with pytest.raises(ValueError, match="layer"):
        with torch.inference_mode():
            mh.comfy_reference(model, {"samples": src}, cond, "block.9")


def test_nodes_select_channels_reference_and_sampler(host, tmp_path):
    """The node classes end to end in-process: select channels on rendered pans, build the reference with them,
    sample with MoftSampler (weight 0 equals KSampler) and a GUIDER."""
    comfy, mh, model, _, cond, src = host
    comfy_nodes = H.comfy_nodes()

    from moaw_core.data.sources import synthetic_source
    from moaw_core.tracking.codecs import PatchPCACodec

    pack = H.load_pack()
    path = tmp_path / "codec.safetensors"
    PatchPCACodec.fit(torch.stack([synthetic_source(i).video for i in range(2)]), 16).save(path)
    vae = pack.nodes.demo_vae.CodecVAE(PatchPCACodec.load(path))
    N = pack.nodes.moft
    with torch.inference_mode():
        chans = N.MoftSelectChannels.execute(model, vae, cond, "block.1", 0.2, 3, 2, 4, 32, 32, 0).args[0]
        assert len(chans.channels) == 3 and chans.layer == "block.1" and chans.clips == 2
        ref = N.MoftReferenceNode.execute(model, {"samples": src}, cond, "block.1", 0.2, 0.04, "frame", 0,
                                          channels=chans).args[0]
        assert ref.channels == chans.channels
        latent = {"samples": torch.zeros_like(src)}
        settings = dict(step_size=0.5, start=0.0, end=0.5, repeats=1, loss="cosine")
        zero = N.MoftSamplerNode.execute(model, cond, cond, latent, 5, 4, 1.0, "euler", "simple", ref, weight=0.0,
                                         **settings).args[0]["samples"]
        (plain,) = comfy_nodes.common_ksampler(model, 5, 4, 1.0, "euler", "simple", cond, cond, latent)
        assert torch.equal(zero, plain["samples"])
        guided = N.MoftSamplerNode.execute(model, cond, cond, latent, 5, 4, 1.0, "euler", "simple", ref, weight=50.0,
                                           **settings).args[0]["samples"]
        assert not torch.equal(guided, zero)
        guider = N.MoftGuiderNode.execute(model, cond, cond, 1.0, ref, weight=5.0, **settings).args[0]
        assert isinstance(guider, comfy.samplers.CFGGuider) and guider.model_patcher is not model
    with pytest.raises(ValueError, match="selected at 'block.1'"):
        with torch.inference_mode():
            N.MoftReferenceNode.execute(model, {"samples": src}, cond, "block.2", 0.2, 0.04, "frame", 0,
                                        channels=chans)
