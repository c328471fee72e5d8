"""Augmentation of training clips: photometric jitter (tracks unchanged) and residual clips (`residual_clip`).

Photometric: the tracker should not care about exposure.

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
import torch.nn.functional as F

from moaw_core.tracking.tracks import DenseTracks, pixel_grid


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


# ----------------------------------------------------------------------------- residual clips
@dataclass(frozen=True)
class ResidualConfig:
    """Residual clips: what the tracker sees when it refines its own tracks (`long_tracks.refine_tracks`)."""

    prob: float = 0.3                      # fraction of clips made residual
    max_error: float = 5.0                 # largest end-of-clip track error (px at the clip's size), uniform in [0, it]
    grid: tuple[int, int] = (1, 6)         # error field smoothness: random values on an n x n grid, n in this range
    jitter: float = 0.3                    # per-frame error on top of the drift, as a fraction of it
    iterations: int = 10                   # fixed-point iterations that invert the perturbed tracks

    def __post_init__(self):
        if not 0 <= self.prob <= 1 or self.max_error < 0 or not 1 <= self.grid[0] <= self.grid[1] \
                or self.jitter < 0 or self.iterations < 1:
            raise ValueError(f"ResidualConfig: prob in [0,1], max_error >= 0, 1 <= grid low <= high, jitter >= 0, "
                             f"iterations >= 1; got {self.prob}, {self.max_error}, {self.grid}, {self.jitter}, "
                             f"{self.iterations}")


def _smooth_field(k: int, n: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """k random smooth 2-D fields [k,H,W,2] (Gaussian values on an n x n grid, bicubic)."""
    z = torch.randn(k, 2, n, n, generator=g)
    return F.interpolate(z, size=(height, width), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)


def residual_clip(video: torch.Tensor, tracks: DenseTracks, g: torch.Generator,
                  cfg: ResidualConfig = ResidualConfig()) -> tuple[torch.Tensor, DenseTracks]:
    """A clip as the tracker's refinement pass sees it, with exact tracks.

    The clip's tracks are perturbed by a smooth error that grows over the clip (x'_t = xy_t + e_t, e_0 = 0, as
    chained windows drift), every frame is warped to frame 0 by them (W_t(q) = frame_t(x'_t(q)), W_0 = frame 0)
    and the target is the residual: the frame-0 point p is at q = p + r_t(p) in W_t, x'_t(q) = xy_t(p), solved by
    fixed-point iteration. Points whose solution does not converge to 0.5 px (folds, the border) are hidden; depth
    is kept. One draw per clip from `g` (or the clip unchanged with probability 1 - prob).

    Args: video [T,H,W,3] in [0,1]; tracks DenseTracks [T,H,W] of it (`moaw_core.data` clips' exact tracks).
    Returns: (warped video, residual DenseTracks).
    """
    from moaw_core.tracking.long_tracks import sample_at

    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video: expected [T,H,W,3] in [0,1], got {got}")
    if not isinstance(tracks, DenseTracks) or tracks.xy.shape[:3] != video.shape[:3]:
        raise ValueError(f"tracks: expected DenseTracks of the video's {tuple(video.shape[:3])}")
    if float(torch.rand((), generator=g)) >= cfg.prob:
        return video.clone(), tracks
    T, H, W, _ = video.shape
    amp = cfg.max_error * float(torch.rand((), generator=g))
    n = int(torch.randint(cfg.grid[0], cfg.grid[1] + 1, (), generator=g))
    ramp = torch.linspace(0, 1, T)[:, None, None, None]
    e = amp * (ramp * _smooth_field(1, n, H, W, g) + cfg.jitter * ramp * _smooth_field(T, n, H, W, g))
    e[0] = 0
    xy = tracks.xy.float()
    moved = xy + e
    warped = sample_at(video.float(), moved).clamp(0, 1)
    warped[0] = video[0].float()
    grid = pixel_grid(H, W)[None]
    r = -e
    for _ in range(cfg.iterations):
        r = r - (sample_at(moved, grid + r) - xy)
    converged = (sample_at(moved, grid + r) - xy).norm(dim=-1) < 0.5
    res_xy = grid + r
    res_xy[0] = grid[0]
    vis = tracks.visible & converged
    vis[0] = True
    return warped.to(video.dtype), DenseTracks(res_xy, vis, tracks.depth)
