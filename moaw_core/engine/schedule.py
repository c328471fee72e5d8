"""Noise schedules, timestep sampling, training targets/losses and the Euler sampler.

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
"""
from __future__ import annotations

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


def inference_sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Euler schedule: [steps + 1] from 1 down to 0 (shifted)."""
    if not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
    return shift_sigma(torch.linspace(1.0, 0.0, steps + 1), shift)


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


@torch.no_grad()
def euler_sample(model_fn, noise: torch.Tensor, steps: int = 1, shift: float = 1.0) -> torch.Tensor:
    """Flow-matching Euler sampler. model_fn(x [B,...], timestep [B] in [0,1000]) -> v.

    Returns x0 estimate [B,...]. steps=1 is x0 = noise - v(noise, 1000).
    """
    sigmas = inference_sigmas(steps, shift)
    x = noise
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        t = torch.full((x.shape[0],), float(s) * 1000.0, device=x.device)
        v = model_fn(x, t)
        x = x + (float(s_next) - float(s)) * v.to(x.dtype)
    return x
