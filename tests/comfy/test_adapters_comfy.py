"""Every ComfyUI family on tiny random-init native models (real classes, ComfyUI's own model building):
detection, layer names, capture shapes/keys, and the two exactness properties of the binding:
`add` at strength 0 is bit-identical to plain sampling, and `replace` at every layer with features captured
during a plain run (same model, noise, steps; fp32) reproduces that run."""
import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def env():
    comfy = H.import_comfy()
    return comfy, H.load_bridge()


def _case(name):
    """(patcher, noise, cond, scheduler, expected layer names, {layer: captured shape})."""
    g = torch.Generator().manual_seed(7)
    if name in ("wan_t2v", "wan_i2v"):
        i2v = name == "wan_i2v"
        p = H.load_native(H.tiny_wan_state_dict(num_layers=2, in_dim=36 if i2v else 16, i2v=i2v))
        cond = [[torch.randn(1, 4, 4096, generator=g), {}]]
        return (p, torch.randn(1, 16, 3, 8, 8, generator=g), cond, "simple", ["block.0", "block.1"],
                {"block.1": (1, 3, 4, 4, 128)})
    if name == "hunyuan":
        p = H.tiny_hunyuan_video(depth=1, single=1)
        cond = [[torch.randn(1, 5, 64, generator=g), {"pooled_output": torch.randn(1, 768, generator=g)}]]
        return (p, torch.randn(1, 16, 3, 8, 8, generator=g), cond, "simple", ["double.0", "single.0"],
                {"double.0": (1, 3, 4, 4, 128), "single.0": (1, 3, 4, 4, 128)})
    if name == "ltxv":
        p = H.tiny_ltxv(num_layers=2)
        cond = [[torch.randn(1, 5, 64, generator=g), {"attention_mask": torch.ones(1, 5, dtype=torch.long)}]]
        return (p, torch.randn(1, 128, 2, 4, 4, generator=g), cond, "simple", ["block.0", "block.1"],
                {"block.0": (1, 2, 4, 4, 48)})
    if name == "svd":
        p = H.tiny_svd()
        cond = [[torch.randn(1, 1, 64, generator=g), {"concat_latent_image": torch.randn(1, 4, 8, 8, generator=g)}]]
        n_in = len(p.model.diffusion_model.input_blocks)
        n_out = len(p.model.diffusion_model.output_blocks)
        layers = [f"input.{i}" for i in range(n_in)] + ["middle.0"] + [f"output.{i}" for i in range(n_out - 1)]
        return (p, torch.randn(4, 4, 8, 8, generator=g), cond, "karras", layers,
                {"input.0": (1, 4, 8, 8, 64), "middle.0": (1, 4, 4, 4, 128), "output.0": (1, 4, 4, 4, 128)})
    raise ValueError(name)


FAMILIES = ["wan_t2v", "wan_i2v", "svd", "hunyuan", "ltxv"]
ADAPTER = {"wan_t2v": "comfy_wan", "wan_i2v": "comfy_wan", "svd": "comfy_svd", "hunyuan": "comfy_hunyuan",
           "ltxv": "comfy_ltxv"}


def _sample(comfy, m, noise, cond, scheduler, steps=2, cfg=1.0):
    return comfy.sample.sample(m, noise, steps, cfg, "euler", scheduler, cond, cond, torch.zeros_like(noise),
                               seed=0, disable_pbar=True)


@pytest.mark.parametrize("name", FAMILIES)
def test_family(env, name):
    comfy, B = env
    from moaw_core.engine.adapters import detect
    from moaw_core.engine.hooks import CaptureHook
    from moaw_core.engine.inject import InjectConfig

    p, noise, cond, sched, layers, shapes = _case(name)
    dm = p.model.diffusion_model
    ad = detect(dm)
    assert ad.name == ADAPTER[name] and [layer.name for layer in ad.layers(dm)] == layers

    # training-free capture: expected layers, steps, shapes and keys
    feats = B.capture_comfy(p, {"samples": noise}, cond, cond, [0.9 * float(p.model.model_sampling.sigma_max), 0.5],
                            list(shapes), seed=1)
    assert feats.layers == tuple(shapes) and feats.steps == (0, 1) and feats.adapter == ad.name
    assert sorted(feats.tensors) == sorted((layer, s) for layer in shapes for s in (0, 1))
    for layer, shape in shapes.items():
        assert tuple(feats.get(layer, 0).shape) == shape, layer

    # capture every layer during a plain run (fp32), then the exactness properties
    plain = _sample(comfy, p, noise, cond, sched)
    cap = CaptureHook(ad, layers, dtype=torch.float32)
    assert torch.equal(_sample(comfy, B.attach_hooks(p, [cap]), noise, cond, sched), plain)
    run = cap.to_features(ad.fingerprint(dm), tuple(noise.shape))
    assert run.steps == (0, 1)
    zero = B.apply_injection(p, run, InjectConfig(strength=0.0))
    assert torch.equal(_sample(comfy, zero, noise, cond, sched), plain)
    empty = B.apply_injection(p, run, InjectConfig(strength=1.0, start=0.6, end=1.0))  # misses steps 0 and 1
    assert torch.equal(_sample(comfy, empty, noise, cond, sched), plain)
    replay = B.apply_injection(p, run, InjectConfig(mode="replace"))
    torch.testing.assert_close(_sample(comfy, replay, noise, cond, sched), plain, rtol=1e-4, atol=1e-4)
    added = B.apply_injection(p, run, InjectConfig(strength=0.5))
    assert not torch.allclose(_sample(comfy, added, noise, cond, sched), plain)
