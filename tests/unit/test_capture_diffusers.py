"""Capture on diffusers models: training-free (one pass per noise level) and through a sampling loop given as
a callable (the tracker path: source latents concatenated at the input); replay with InjectHook."""
import pytest
import torch

from moaw_core.engine.adapters import check_compatible, detect
from moaw_core.engine.capture import capture, capture_training_free
from moaw_core.engine.hooks import HookContext, InjectHook, attach
from moaw_core.engine.inject import InjectConfig
from test_adapters_diffusers import tiny

SIGMAS = [1.0, 0.75, 0.5, 0.0]


@pytest.mark.parametrize("family", ["wan", "svd", "cogvideox", "hunyuan"])
def test_training_free_layers_steps_and_determinism(family):
    m, kw, x = tiny(family)
    layers = [layer.name for layer in detect(m).layers(m)][:2]
    f = capture_training_free(m, x, [0.9, 0.5], layers, kw, seed=3)
    assert f.layers == tuple(layers) and f.steps == (0, 1)
    assert f.sigmas == (0.9, 0.5) and f.timesteps == (900.0, 500.0)
    assert f.adapter == detect(m).name and f.latent_shape == tuple(x.shape)
    assert all(t.dtype == torch.float16 and t.shape[0] == 1 for t in f.tensors.values())
    g = capture_training_free(m, x, [0.9, 0.5], layers, kw, seed=3)
    assert all(torch.equal(g.tensors[k], v) for k, v in f.tensors.items())


def test_bad_inputs():
    m, kw, x = tiny("wan")
    with pytest.raises(ValueError, match="empty layer selection"):
        capture_training_free(m, x, [0.5], [], kw)
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['block.9'\]"):
        capture_training_free(m, x, [0.5], ["block.9"], kw)
    with pytest.raises(ValueError, match="5-D"):
        capture_training_free(m, x[0], [0.5], ["block.0"], kw)


def _sampler(model, kw, src=None):
    def forward(x_t, sigma):
        inp = x_t if src is None else torch.cat([x_t, src], dim=1)
        return model(inp, timestep=torch.tensor([1000.0 * sigma]), **kw)[0]
    return forward


def test_tracker_capture_and_replace_replay():
    gen, kw, x = tiny("wan")
    tracker, _, _ = tiny("wan", in_channels=8, seed=5)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    # tracker path: source latents concatenated on channels; same blocks as the generator
    tf, tracks = capture(_sampler(tracker, kw, src=x), tracker, noise, SIGMAS, ["block.0", "block.1"])
    assert tracks.shape == x.shape and tf.steps == (0, 1, 2) and tf.sigmas == (1.0, 0.75, 0.5)
    check_compatible(tf.fingerprint, detect(gen).fingerprint(gen))
    # replay: capture the generator's own sampling (fp32), then sample again replacing every layer
    feats, plain = capture(_sampler(gen, kw), gen, noise, SIGMAS, ["block.0", "block.1"], dtype=torch.float32)
    hook = InjectHook(feats, InjectConfig(mode="replace"), detect(gen))
    ctx = HookContext(n_steps=3)
    xi = noise
    with torch.no_grad(), attach(gen, [hook], ctx=ctx):
        for i in range(3):
            ctx.step, ctx.sigma = i, SIGMAS[i]
            xi = xi + (SIGMAS[i + 1] - SIGMAS[i]) * _sampler(gen, kw)(xi, SIGMAS[i])
    assert torch.allclose(xi, plain, atol=1e-5)
    # and injecting the tracker's features changes the result
    hook = InjectHook(tf, InjectConfig(strength=1.0), detect(gen))
    ctx = HookContext(n_steps=3)
    xj = noise
    with torch.no_grad(), attach(gen, [hook], ctx=ctx):
        for i in range(3):
            ctx.step, ctx.sigma = i, SIGMAS[i]
            xj = xj + (SIGMAS[i + 1] - SIGMAS[i]) * _sampler(gen, kw)(xj, SIGMAS[i])
    assert not torch.allclose(xj, plain, atol=1e-3)
