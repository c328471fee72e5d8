"""Input checks shared by the metric modules: arrays (numpy or torch) in, validated numpy out."""

from __future__ import annotations

import numpy as np


def as_np(x, name: str, ndim: int | None = None, last: int | None = None) -> np.ndarray:
    """numpy view of an array or torch tensor, with a clear message on a wrong rank / last dimension."""
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dims, got shape {tuple(a.shape)}")
    if last is not None and a.shape[-1] != last:
        raise ValueError(f"{name}: expected last dim {last}, got shape {tuple(a.shape)}")
    return a


def tracks(points, visible, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``points [N, T, 2]`` float64 and ``visible [N, T]`` bool (all True when None)."""
    p = as_np(points, name, ndim=3, last=2).astype(np.float64)
    if p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"{name}: expected [N>=1, T>=2, 2], got shape {p.shape}")
    if visible is None:
        v = np.ones(p.shape[:2], dtype=bool)
    else:
        v = as_np(visible, f"{name} visibility").astype(bool)
        if v.shape != p.shape[:2]:
            raise ValueError(f"{name} visibility: expected shape {p.shape[:2]}, got {v.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return p, v


def video(x, name: str, min_frames: int = 1) -> np.ndarray:
    """Validated ``[T, H, W, 3]`` float32 RGB video in [0, 1] (torch or numpy in)."""
    v = as_np(x, name)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < min_frames or min(v.shape[1:3]) < 1:
        raise ValueError(f"{name}: expected [T>={min_frames}, H, W, 3] float RGB in [0, 1], "
                         f"got shape {tuple(v.shape)}")
    if not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"{name}: expected a float array in [0, 1], got dtype {v.dtype}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains NaN or inf")
    if v.max() > 1.0 + 1e-3 or v.min() < -1e-3:
        raise ValueError(f"{name}: expected values in [0, 1], got range [{v.min():.3g}, {v.max():.3g}]")
    return np.ascontiguousarray(v, dtype=np.float32)


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected shape {tuple(a.shape)} like {name_a}, got {tuple(b.shape)}")
