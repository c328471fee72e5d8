"""Injection math: how a cached motion feature f is combined with the generator's hidden state h.

Pure tensor functions on token grids `[B, T, H, W, C]` plus the frozen `InjectConfig`. No host code here:
`moaw_core.engine.hooks.InjectHook` calls `inject_grid` per block, and `nodes/bridge.py` binds that to ComfyUI.

Order of operations for one (layer, step): resample f to h's grid (trilinear, warns) -> optional content
removal (subtract f's mean over frames, per position and channel, MOFT-style) -> optional per-channel
normalisation of f to h's mean/std -> combine with mode and (masked) strength.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

log = logging.getLogger("moaw")

MODES = ("add", "replace", "blend")
BRANCHES = ("cond", "both")


@dataclass(frozen=True)
class InjectConfig:
    """How to inject.

    layers: canonical layer names to inject ("block.12"); None = every layer in the features. An empty
        tuple is an error.
    strength: s in h + s*f ("add") or the lerp weight in "blend"; ignored by "replace".
    mode: "add" (h + s*f), "replace" (f), "blend" (h + s*(f - h)).
    start, end: step window as fractions of the sampling schedule, active for steps i with
        start <= i / n_steps < end (n_steps = len(sample_sigmas) - 1). start >= end is an error (an empty
        window would silently inject nothing; strength 0 is the way to switch injection off).
    normalize: rescale f per channel to h's mean and std (over the token grid) before combining.
    remove_content: subtract f's mean over frames (per position and channel) first (MOFT content removal).
    mask: optional float mask `[H, W]` or `[T, H, W]` in [0, 1] (any resolution; resized to the token grid);
        weights the change h' - h per token.
    branch: "cond" (inject into the positive / conditional pass only) or "both" (cond and uncond).
    resample: allow trilinear resampling of features whose token grid differs from the generation's;
        False makes a mismatch an error.
    """

    layers: tuple[str, ...] | None = None
    strength: float = 1.0
    mode: str = "add"
    start: float = 0.0
    end: float = 1.0
    normalize: bool = False
    remove_content: bool = False
    mask: torch.Tensor | None = field(default=None, compare=False, hash=False)
    branch: str = "cond"
    resample: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"InjectConfig.mode must be one of {MODES}, got {self.mode!r}")
        if self.branch not in BRANCHES:
            raise ValueError(f"InjectConfig.branch must be one of {BRANCHES}, got {self.branch!r}")
        if self.layers is not None:
            if isinstance(self.layers, str):
                object.__setattr__(self, "layers", (self.layers,))
            object.__setattr__(self, "layers", tuple(self.layers))
            if not self.layers:
                raise ValueError("InjectConfig.layers is empty: select at least one layer (or None for all)")
        for name in ("strength", "start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"InjectConfig.{name} must be a finite number, got {value!r}")
        if not (0.0 <= self.start <= 1.0 and 0.0 <= self.end <= 1.0):
            raise ValueError(f"InjectConfig.start/end must lie in [0, 1], got {self.start}, {self.end}")
        if self.start >= self.end:
            raise ValueError(f"InjectConfig: the injection window is empty (start {self.start} >= end {self.end}), "
                             f"so nothing would be injected; set end > start (e.g. start 0, end 0.5), or strength 0 "
                             f"to switch injection off")
        if self.mask is not None:
            if not isinstance(self.mask, torch.Tensor) or self.mask.ndim not in (2, 3):
                raise ValueError(f"InjectConfig.mask must be a [H, W] or [T, H, W] tensor, got "
                                 f"{getattr(self.mask, 'shape', type(self.mask))}")


def step_active(step_index: int, n_steps: int, start: float, end: float) -> bool:
    """Whether step `step_index` of `n_steps` lies in the window [start, end) (fractions of the schedule)."""
    if n_steps <= 0:
        return start < end
    frac = step_index / n_steps
    return start <= frac < end


def active_steps(n_steps: int, start: float, end: float) -> list[int]:
    """The step indices of an `n_steps` schedule that lie in the window [start, end)."""
    return [i for i in range(max(int(n_steps), 0)) if step_active(i, n_steps, start, end)]


def step_index(sigma: float, sample_sigmas) -> int:
    """Index of the schedule entry nearest to `sigma` (the current sampling step)."""
    sig = torch.as_tensor(sample_sigmas, dtype=torch.float64).flatten()
    return int(torch.argmin((sig - float(sigma)).abs()))


def resample_grid(f: torch.Tensor, grid, *, allow: bool, what: str = "features") -> torch.Tensor:
    """Resample `f` `[B, T, H, W, C]` to token grid `grid` (T, H, W) with trilinear interpolation.

    Raises ValueError when the grids differ and `allow` is False; logs a warning when it resamples."""
    grid = tuple(int(g) for g in grid)
    if tuple(f.shape[1:4]) == grid:
        return f
    if not allow:
        raise ValueError(f"{what}: cached token grid (T, H, W) = {tuple(f.shape[1:4])} differs from the "
                         f"generation's {grid} (frame count or resolution differ) and resampling is off; "
                         f"capture at the generation size or set resample=True")
    log.warning("moaw: resampling %s from token grid %s to %s (frame count or resolution differ)",
                what, tuple(f.shape[1:4]), grid)
    x = f.permute(0, 4, 1, 2, 3)
    dtype = x.dtype
    if dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
        x = x.float()
    x = F.interpolate(x, size=grid, mode="trilinear", align_corners=False)
    return x.to(dtype).permute(0, 2, 3, 4, 1)


def remove_content(f: torch.Tensor) -> torch.Tensor:
    """MOFT content removal: subtract the mean over frames, per spatial position and channel."""
    return f - f.mean(dim=1, keepdim=True)


def normalize_to(f: torch.Tensor, h: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rescale `f` per (batch, channel) to the mean and std of `h` over the token grid (both [B,T,H,W,C])."""
    dims = (1, 2, 3)
    fm, fs = f.mean(dims, keepdim=True), f.std(dims, keepdim=True)
    hm, hs = h.mean(dims, keepdim=True), h.std(dims, keepdim=True)
    return (f - fm) / (fs + eps) * hs + hm


def mask_to_grid(mask: torch.Tensor, grid, device=None, dtype=None) -> torch.Tensor:
    """Resize a `[H, W]` or `[T, H, W]` mask to `[1, T, H, W, 1]` on the token grid (area/trilinear)."""
    m = mask.to(device=device, dtype=torch.float32)
    if m.ndim == 2:
        m = m[None]
    m = F.interpolate(m[None, None], size=tuple(int(g) for g in grid), mode="trilinear", align_corners=False)
    return m[0, 0, ..., None][None].to(dtype)


def combine(h: torch.Tensor, f: torch.Tensor, mode: str, strength: float, mask: torch.Tensor | None = None):
    """h' for one block: "add" h + s*f, "replace" f, "blend" h + s*(f - h); `mask` weights h' - h."""
    if mode == "add":
        delta = strength * f
    elif mode == "replace":
        delta = f - h
    elif mode == "blend":
        delta = strength * (f - h)
    else:
        raise ValueError(f"unknown injection mode {mode!r}; expected one of {MODES}")
    if mask is None:
        return f.to(h.dtype) if mode == "replace" else h + delta
    return h + mask * delta


def inject_grid(h: torch.Tensor, f: torch.Tensor, cfg: InjectConfig, layer: str = "") -> torch.Tensor:
    """Apply `cfg` to one layer: h `[B, T, H, W, C]` (generation), f `[1 or B, T', H', W', C]` (cached).

    Returns h' with h's shape and dtype. Raises ValueError for a channel / batch mismatch or NaN in f."""
    if f.shape[-1] != h.shape[-1]:
        raise ValueError(f"layer {layer!r}: cached features have {f.shape[-1]} channels, the model's hidden "
                         f"state has {h.shape[-1]} (features from another model width)")
    if f.shape[0] not in (1, h.shape[0]):
        raise ValueError(f"layer {layer!r}: cached batch {f.shape[0]} cannot broadcast to batch {h.shape[0]}")
    f = f.to(device=h.device, dtype=h.dtype)
    f = resample_grid(f, h.shape[1:4], allow=cfg.resample, what=f"layer {layer!r}")
    if cfg.remove_content:
        f = remove_content(f)
    if cfg.normalize:
        f = normalize_to(f, h)
    mask = None if cfg.mask is None else mask_to_grid(cfg.mask, h.shape[1:4], h.device, h.dtype)
    return combine(h, f.expand_as(h), cfg.mode, cfg.strength, mask)
