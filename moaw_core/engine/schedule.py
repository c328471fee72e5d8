"""Noise schedules, timestep sampling, training targets/losses and the one flow-Euler sampler.

One parameterisation everywhere, the one ComfyUI uses for Wan (model_sampling CONST, flow matching):
    x_sigma = (1 - sigma) * x0 + sigma * noise,   sigma in [0, 1],   model timestep = 1000 * sigma,
    the model output v estimates noise - x0, so x0 = x_sigma - sigma * v.
Losses (`LOSSES`):
  - "flow":  MSE(v, noise - x0)                       (flow matching / rectified flow, Wan's own loss)
  - "eps":   MSE(x_sigma - (1 - sigma) * v ... ) i.e. MSE on the implied noise estimate x_sigma + (1 - sigma) v
  - "l1":    one-step regression (Marigold end-to-end style): sigma = 1 and the noise replaced by its
             mean, zeros, so x_sigma = 0 and L1(-v, x0). A one-step Euler step from zeros gives x0 = -v;
             the checkpoint records init_noise "zeros" (a network cannot copy Gaussian noise through
             itself exactly, so feeding real noise would only add error).
Sampling (`flow_sigmas`, `flow_sample`): one schedule and one loop for every sampler of the library (generator,
tracker, capture), both diffusers' `FlowMatchEulerDiscreteScheduler`: the schedule of `steps` steps is
1 ... 1/1000 evenly in sigma, then 0 (shifted), as diffusers' Wan pipelines sample. Training's sigma sampling
(`sample_sigmas`, `training_sigmas`) is separate.
"""
from __future__ import annotations

from typing import Callable

import torch

LOSSES = ("flow", "eps", "l1")
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """ComfyUI / Wan time shift: shift * s / (1 + (shift - 1) * s). shift 1 = identity."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sample_sigmas(batch: int, generator: torch.Generator | None = None, mode: str = "logit_normal",
                  shift: float = 1.0, device=None) -> torch.Tensor:
    """Training noise levels. Returns sigma [batch] in (0, 1).

    Args:
        mode: "uniform" or "logit_normal" (SD3: sigmoid of N(0, 1), concentrates mid-range).
        shift: applied after sampling (larger = noisier), as at inference.
    """
    if mode == "uniform":
        s = torch.rand(batch, generator=generator)
    elif mode == "logit_normal":
        s = torch.sigmoid(torch.randn(batch, generator=generator))
    else:
        raise ValueError(f"mode: expected one of {TIMESTEP_SAMPLINGS}, got {mode!r}")
    return shift_sigma(s.clamp(1e-4, 1 - 1e-4), shift).to(device)


def flow_sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """The sampling schedule: [steps + 1] float32 sigmas from 1 down to 0, those of diffusers'
    `FlowMatchEulerDiscreteScheduler(shift=shift).set_timesteps(steps)` (steps=1: [1, 0]; 4: [1, .667, .334, .001, 0]
    at shift 1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
    if not (isinstance(shift, (int, float)) and 0 < shift < float("inf")):
        raise ValueError(f"shift: expected a positive number, got {shift!r}")
    sched = FlowMatchEulerDiscreteScheduler(shift=float(shift))
    sched.set_timesteps(steps)
    return sched.sigmas.clone()


def _bcast(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.to(x.device, x.dtype).view(-1, *([1] * (x.ndim - 1)))


def noisy_input(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_sigma = (1 - sigma) x0 + sigma noise. x0, noise [B,...]; sigma [B]."""
    s = _bcast(sigma, x0)
    return (1 - s) * x0 + s * noise


def diffusion_loss(v: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, x_t: torch.Tensor,
                   sigma: torch.Tensor, loss: str = "flow", weight: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar loss of model output v (see module docstring). All tensors [B,C,...], sigma [B].

    weight: optional per-channel weights [C] (e.g. `codec_channel_weights`), applied to the element loss.
    """
    s = _bcast(sigma, x0)
    if loss == "flow":
        err = (v.float() - (noise - x0).float()) ** 2
    elif loss == "eps":
        err = (x_t + (1 - s) * v - noise).float() ** 2
    elif loss == "l1":
        err = (x_t - s * v - x0).float().abs()
    else:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if weight is not None:
        err = err * weight.to(err.device, err.dtype).view(1, -1, *([1] * (err.ndim - 2)))
    return err.mean()


def codec_channel_weights(scale: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Per-latent-channel loss weights proportional to each channel's pixel-space energy (scale^2 of a
    linear codec with orthonormal basis: then the weighted latent MSE is the pixel MSE), mean 1.

    Args: scale [C] per-channel std of the codec; repeats: latents made of `repeats` codec images.
    Returns: [C * repeats].
    """
    w = scale.float() ** 2
    return (w / w.mean()).repeat(repeats)


def training_sigmas(loss: str, batch: int, generator=None, mode: str = "logit_normal", shift: float = 1.0,
                    device=None) -> torch.Tensor:
    """sigma [B] for a loss: 1 for the one-step "l1" regression, sampled otherwise."""
    if loss == "l1":
        return torch.ones(batch, device=device)
    return sample_sigmas(batch, generator, mode, shift, device)


def initial_noise(shape, generator: torch.Generator | None = None, kind: str = "gaussian") -> torch.Tensor:
    """Sampler start: N(0, 1) ("gaussian") or zeros ("zeros", for one-step regression models)."""
    if kind == "zeros":
        return torch.zeros(shape)
    if kind == "gaussian":
        return torch.randn(shape, generator=generator)
    raise ValueError(f"init_noise: expected 'gaussian' or 'zeros', got {kind!r}")


def training_noise(loss: str, shape, generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise paired with a loss: zeros for "l1" (see module docstring), Gaussian otherwise."""
    return initial_noise(shape, generator, "zeros" if loss == "l1" else "gaussian")


def flow_sample(velocity: Callable, x: torch.Tensor, sigmas, *, begin: int = 0, before_step: Callable | None = None,
                callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """The flow-matching Euler sampler (diffusers' `FlowMatchEulerDiscreteScheduler.step`): x <- x + (s' - s) v.

    Args:
        velocity: `velocity(x, t, i, sigma) -> v`, the model call; t: diffusers' timestep (0-d tensor, 1000 sigma,
            on x's device), i: step index counted from `begin`, sigma: float.
        x: the latent at `sigmas[begin]` (noise for a full run; an SDEdit start otherwise).
        sigmas: the schedule, descending and ending at 0 (usually `flow_sigmas(steps, shift)`).
        begin: first step to run (ComfyUI's denoise < 1 / start_at_step): steps begin .. len(sigmas) - 2 run.
        before_step: `before_step(x, i, sigma, t) -> x` before each model call (latent guidance such as MOFT,
            holding given frames, updating a hook context); it may use autograd under `torch.enable_grad()`.
        callback: `callback(done, total)` after each step.
    Returns:
        x at sigma 0, in the model output's dtype.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    sig = [float(v) for v in torch.as_tensor(sigmas, dtype=torch.float32).flatten()]
    if len(sig) < 2 or sig[-1] != 0.0 or any(a <= b for a, b in zip(sig[:-1], sig[1:])):
        raise ValueError(f"sigmas: expected a descending schedule ending at 0, got {sig[:8]}")
    if isinstance(begin, bool) or not isinstance(begin, int) or not 0 <= begin < len(sig) - 1:
        raise ValueError(f"begin: expected an int in [0, {len(sig) - 2}], got {begin!r}")
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)  # the schedule comes shifted already
    sched.set_timesteps(sigmas=sig[:-1], device=x.device)
    sched.set_begin_index(begin)
    total = len(sig) - 1 - begin
    for i, t in enumerate(sched.timesteps[begin:]):
        sigma = float(sched.sigmas[begin + i])
        if before_step is not None:
            x = before_step(x, i, sigma, t)
        v = velocity(x, t, i, sigma)
        x = sched.step(v, t, x, return_dict=False)[0]
        if callback is not None:
            callback(i + 1, total)
    return x
