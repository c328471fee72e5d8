"""The pinned ComfyUI host works in-process: tiny random-init native video models built through ComfyUI's own
model detection / supported_models, wrapped in ModelPatcher and sampled with ComfyUI's own samplers (CPU)."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def comfy():
    return H.import_comfy()


def _sample(comfy, patcher, noise, cond, steps=3, cfg=1.0, sampler="euler", scheduler="simple", seed=0):
    return comfy.sample.sample(patcher, noise, steps, cfg, sampler, scheduler, cond, cond,
                               torch.zeros_like(noise), seed=seed, disable_pbar=True)


def test_wan21_t2v_detected_and_sampled(comfy):
    patcher = H.load_native(H.tiny_wan_state_dict(num_layers=2))
    assert type(patcher.model).__name__ == "WAN21"
    assert type(patcher.model.model_config).__name__ == "WAN21_T2V"
    assert len(patcher.model.diffusion_model.blocks) == 2
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 16, 3, 8, 8, generator=g)
    cond = [[torch.randn(1, 4, 4096, generator=g), {}]]
    a = _sample(comfy, patcher, noise, cond, cfg=3.0)
    b = _sample(comfy, patcher, noise, cond, cfg=3.0)
    assert a.shape == noise.shape and torch.isfinite(a).all()
    assert torch.equal(a, b), "same noise and seed must give the same video latent"
    c = _sample(comfy, patcher, torch.randn(1, 16, 3, 8, 8, generator=g), cond, cfg=3.0)
    assert not torch.allclose(a, c)


def test_wan21_i2v_detected(comfy):
    patcher = H.load_native(H.tiny_wan_state_dict(num_layers=1, in_dim=36, i2v=True))
    assert type(patcher.model.model_config).__name__ == "WAN21_I2V"


def test_cfg_guider_path(comfy):
    """The SamplerCustomAdvanced path: CFGGuider + KSAMPLER + explicit sigmas."""
    import comfy.samplers

    patcher = H.load_native(H.tiny_wan_state_dict(num_layers=1))
    g = torch.Generator().manual_seed(1)
    cond = [[torch.randn(1, 4, 4096, generator=g), {}]]
    guider = comfy.samplers.CFGGuider(patcher)
    guider.set_conds(cond, [[torch.zeros(1, 4, 4096), {}]])
    guider.set_cfg(2.0)
    sigmas = comfy.samplers.calculate_sigmas(patcher.get_model_object("model_sampling"), "simple", 4)
    noise = torch.randn(1, 16, 2, 8, 8, generator=g)
    out = guider.sample(noise, torch.zeros_like(noise), comfy.samplers.sampler_object("euler"), sigmas, seed=1,
                        disable_pbar=True)
    assert out.shape == noise.shape and torch.isfinite(out).all()


def test_hunyuan_video_sampled(comfy):
    patcher = H.tiny_hunyuan_video()
    assert type(patcher.model).__name__ == "HunyuanVideo"
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(1, 16, 3, 8, 8, generator=g)
    cond = [[torch.randn(1, 5, 64, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]]
    out = _sample(comfy, patcher, noise, cond)
    assert out.shape == noise.shape and torch.isfinite(out).all()


def test_svd_sampled(comfy):
    patcher = H.tiny_svd()
    assert type(patcher.model).__name__ == "SVD_img2vid"
    g = torch.Generator().manual_seed(3)
    frames = 4
    noise = torch.randn(frames, 4, 8, 8, generator=g)  # SVD: frames are the batch axis
    cond = [[torch.randn(1, 1, 64, generator=g), {"concat_latent_image": torch.randn(1, 4, 8, 8, generator=g)}]]
    out = _sample(comfy, patcher, noise, cond, scheduler="karras")
    assert out.shape == noise.shape and torch.isfinite(out).all()
