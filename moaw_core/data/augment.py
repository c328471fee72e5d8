"""Photometric augmentation of training clips (tracks unchanged): the tracker should not care about exposure.

Real footage is darker, flatter and noisier than the procedural clips (MPI-Sintel's medium case averages 0.13
brightness with 0.065 contrast, the synthetic clips 0.45 / 0.23), and a tracker trained only on bright,
high-contrast textures hallucinates motion there. One random draw per clip, the same for every frame (so
the ground-truth tracks stay exact): exposure gain, contrast around the clip mean, gamma, per-channel colour
gains and sensor noise, as optical-flow trainers do with colour jitter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PhotometricConfig:
    prob: float = 0.8                      # fraction of clips augmented
    gain: tuple[float, float] = (0.25, 1.3)      # exposure (multiplies), log-uniform
    contrast: tuple[float, float] = (0.3, 1.2)   # around the clip mean, log-uniform
    gamma: tuple[float, float] = (0.7, 1.5)      # log-uniform
    color: float = 0.15                    # per-channel gain in [1 - color, 1 + color]
    noise: float = 0.02                    # Gaussian sensor noise std, uniform in [0, noise]

    def __post_init__(self):
        for name in ("gain", "contrast", "gamma"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"PhotometricConfig.{name}: expected 0 < low <= high, got {(lo, hi)}")
        if not 0 <= self.prob <= 1 or not 0 <= self.color < 1 or self.noise < 0:
            raise ValueError(f"PhotometricConfig: prob in [0,1], color in [0,1), noise >= 0; got "
                             f"{self.prob}, {self.color}, {self.noise}")


def _log_uniform(lo: float, hi: float, g: torch.Generator) -> float:
    u = float(torch.rand((), generator=g))
    return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


def photometric(video: torch.Tensor, g: torch.Generator, cfg: PhotometricConfig = PhotometricConfig()) -> torch.Tensor:
    """video [T,H,W,3] in [0,1] -> augmented copy in [0,1] (one draw per clip from `g`)."""
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video: expected [T,H,W,3] in [0,1], got {got}")
    if float(torch.rand((), generator=g)) >= cfg.prob:
        return video.clone()
    x = video.float()
    mean = x.mean()
    x = (mean + (x - mean) * _log_uniform(*cfg.contrast, g)).clamp(0, 1)
    x = x.pow(_log_uniform(*cfg.gamma, g))
    gains = 1.0 + cfg.color * (2 * torch.rand(3, generator=g) - 1)
    x = x * _log_uniform(*cfg.gain, g) * gains
    sigma = cfg.noise * float(torch.rand((), generator=g))
    if sigma > 0:
        x = x + sigma * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1).to(video.dtype)
