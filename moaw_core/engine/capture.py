"""Capturing motion features from diffusers models (ComfyUI models: `nodes/bridge.py:capture_comfy`).

Two ways, one result type (`MotionFeatures`):
- `capture_training_free`: noise a source latent to each chosen noise level and run the generator once per
  level (cond pass), recording the chosen layers (MOFT / DiTFlow style).
- `capture`: run the flow-Euler sampler (`schedule.flow_sample`) with a velocity `forward(x_t, sigma)` (e.g. the tracker's
  video -> tracks sampling, whose forward concatenates the source latents at the input) while the blocks of
  `module` are hooked; records every step and returns the final sample too.
"""
from __future__ import annotations

from typing import Callable

import torch

from moaw_core.engine.adapters import Adapter, detect
from moaw_core.engine.features import MotionFeatures
from moaw_core.engine.hooks import CaptureHook, HookContext, attach
from moaw_core.engine.schedule import flow_sample


def flow_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: float) -> tuple[torch.Tensor, float]:
    """Rectified-flow noising (Wan, HunyuanVideo): x_t = (1 - s) x0 + s n, model timestep = 1000 s."""
    return (1.0 - sigma) * x0 + sigma * noise, 1000.0 * sigma


def _check(layers, adapter: Adapter, module) -> tuple[str, ...]:
    layers = tuple([layers] if isinstance(layers, str) else layers)
    if not layers:
        raise ValueError("capture: empty layer selection")
    known = [layer.name for layer in adapter.layers(module)]
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"capture: unknown layer name(s) {unknown} for {adapter.name}; valid: {known}")
    return layers


def _sigmas(sigmas) -> list[float]:
    out = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64).flatten()]
    if not out or not all(s == s for s in out):
        raise ValueError(f"capture: sigmas must be a non-empty list of numbers, got {out}")
    return out


@torch.no_grad()
def capture_training_free(model: torch.nn.Module, latents: torch.Tensor, sigmas, layers, forward_kwargs=None,
                          seed: int = 0, noise_fn: Callable = flow_noise, dtype: torch.dtype = torch.float16,
                          source: str = "") -> MotionFeatures:
    """Noise `latents` to each sigma and run `model` once per sigma, recording `layers`.

    Args:
        model: a diffusers transformer / UNet with a Moaw adapter.
        latents: clean source latent in the model's input layout (Wan/Hunyuan `[B, C, T, H, W]`,
            CogVideoX / SVD `[B, T, C, H, W]`).
        sigmas: noise levels to capture at (descending), step i = sigmas[i].
        layers: canonical layer names. forward_kwargs: extra keyword arguments of `model.forward`
            (encoder_hidden_states, added_time_ids, ...; the cond pass).
        seed: noise seed. noise_fn: `(x0, noise, sigma) -> (x_t, timestep)`; default rectified flow.
        dtype: storage dtype.
    Returns:
        MotionFeatures with one tensor per (layer, step), `[B, T, H, W, C]`.
    """
    adapter = detect(model)
    layers = _check(layers, adapter, model)
    sig = _sigmas(sigmas)
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5:
        raise ValueError(f"capture_training_free: latents must be a 5-D tensor, got "
                         f"{getattr(latents, 'shape', type(latents))}")
    p = next(model.parameters())
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn(latents.shape, generator=g).to(device=p.device, dtype=latents.dtype)
    x0 = latents.to(p.device)
    cap = CaptureHook(adapter, layers, dtype=dtype)
    ctx = HookContext(n_steps=len(sig))
    timesteps = []
    with attach(model, [cap], adapter, ctx):
        for i, s in enumerate(sig):
            x_t, t = noise_fn(x0, noise, s)
            ctx.step, ctx.sigma = i, s
            timesteps.append(float(t))
            tt = torch.full((x_t.shape[0],), float(t), device=p.device)
            model(x_t.to(p.dtype), timestep=tt, **(forward_kwargs or {}))
    feats = cap.to_features(adapter.fingerprint(model), tuple(latents.shape), source or "diffusers training-free",
                            sigmas=sig, timesteps=timesteps)
    feats.extra.update({"mode": "training_free", "seed": int(seed)})
    return feats


@torch.no_grad()
def capture(forward: Callable[[torch.Tensor, float], torch.Tensor], module: torch.nn.Module, x_T: torch.Tensor,
            sigmas, layers, dtype: torch.dtype = torch.float16, source: str = "",
            callback: Callable[[int, int], None] | None = None) -> tuple[MotionFeatures, torch.Tensor]:
    """Run the flow-Euler sampler (`schedule.flow_sample`) with `forward` as the velocity and record `layers` of
    `module` at every step.

    Args:
        forward: `(x_t, sigma) -> velocity`; it must call `module` once (e.g. the tracker: concatenates the
            source latents to `x_t` on channels, converts sigma to the model's timestep).
        module: the hooked diffusers model (its blocks are recorded). x_T: initial noise, model layout.
        sigmas: the full schedule, descending, ending at 0 (`schedule.flow_sigmas`); steps = len(sigmas) - 1.
        layers: canonical names. callback(done, total) after each step.
    Returns:
        (MotionFeatures, final x) - the final x is the sampled (e.g. track) latent.
    """
    adapter = detect(module)
    layers = _check(layers, adapter, module)
    sig = _sigmas(sigmas)
    if len(sig) < 2:
        raise ValueError("capture: sigmas must hold at least two levels (start and end)")
    cap = CaptureHook(adapter, layers, dtype=dtype)
    ctx = HookContext(n_steps=len(sig) - 1)
    def before_step(x, i, sigma, t):
        ctx.step, ctx.sigma = i, sigma
        return x

    def velocity(x, t, i, sigma):
        return forward(x, sigma)

    with attach(module, [cap], adapter, ctx):
        x = flow_sample(velocity, x_T, sig, before_step=before_step, callback=callback)
    timesteps = [cap.timesteps.get(i, s) for i, s in enumerate(sig[:-1])]
    feats = cap.to_features(adapter.fingerprint(module), tuple(x_T.shape), source or "diffusers sampling capture",
                            sigmas=sig[:-1], timesteps=timesteps)
    feats.extra.update({"mode": "sampling"})
    return feats, x
