"""Motion-field agreement: how far the generated video's dense motion is from the source's, per pixel.

Complements motion fidelity (a best-match over tracks, which a static background or a few lucky tracks can
carry): here every pixel of the moving region votes, and a video that does not move, moves the other way or
moves at random scores 0. Pure numpy: flows in ([T-1, H, W, 2], (dx, dy) pixels, frame t -> t+1), floats out.
"""

from __future__ import annotations

import numpy as np

from moaw_core.metrics._arrays import as_np


def _flows(x, name: str) -> np.ndarray:
    f = as_np(x, name, ndim=4, last=2).astype(np.float64)
    if f.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one flow field [T-1>=1, H, W, 2], got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return f


def moving_region(src_flows, moving_px: float = 0.5) -> np.ndarray:
    """Pixels where the source moves: |source flow| > ``moving_px`` pixels per frame. Returns [T-1, H, W] bool."""
    if moving_px < 0:
        raise ValueError(f"moving_px: expected >= 0, got {moving_px}")
    return np.linalg.norm(_flows(src_flows, "src_flows"), axis=-1) > moving_px


def _ratio(err: np.ndarray, mag: np.ndarray, sel: np.ndarray, floor: float) -> tuple[float, float, float]:
    if not sel.any():
        return float("nan"), float("nan"), float("nan")
    e, m = float(err[sel].mean()), float(mag[sel].mean())
    return e, m, e / max(m, floor)


def motion_field_agreement(src_flows, gen_flows, region=None, moving_px: float = 0.5,
                           min_motion_px: float = 0.1) -> dict:
    """End-point error of the generated motion field against the source's, normalised by the source's motion.

    For each pixel and step, err = |gen_flow - src_flow|. Over a set of pixels S:
    ``relative_epe = mean_S err / max(mean_S |src_flow|, min_motion_px)`` and ``agreement = clip(1 -
    relative_epe, 0, 1)``: 1 = the same motion field, 0 = no better than a still video (err = |src|), and a
    reversed, orthogonal or random field is clipped to 0. S is the moving region (``region``, default
    :func:`moving_region`) and the whole frame; the moving-region figures are NaN when the source never moves.

    Args:
        src_flows, gen_flows: [T-1, H, W, 2] (dx, dy) pixels, same shape.
        region: optional [T-1, H, W] bool moving region (e.g. per-frame foreground masks).
        moving_px: threshold of the default moving region. min_motion_px: floor of the normaliser.
    Returns:
        dict(field_agreement_moving, field_agreement_frame, relative_epe_moving, relative_epe_frame,
        epe_moving, epe_frame (px), src_motion_moving, gen_motion_moving, src_motion_frame, gen_motion_frame
        (mean |flow|, px/frame), moving_fraction).
    """
    s, g = _flows(src_flows, "src_flows"), _flows(gen_flows, "gen_flows")
    if s.shape != g.shape:
        raise ValueError(f"gen_flows: expected shape {s.shape} like src_flows, got {g.shape}")
    if min_motion_px <= 0:
        raise ValueError(f"min_motion_px: expected > 0, got {min_motion_px}")
    if region is None:
        region = moving_region(s, moving_px)
    reg = as_np(region, "region").astype(bool)
    if reg.shape != s.shape[:3]:
        raise ValueError(f"region: expected shape {s.shape[:3]}, got {reg.shape}")
    err = np.linalg.norm(g - s, axis=-1)
    ms, mg = np.linalg.norm(s, axis=-1), np.linalg.norm(g, axis=-1)
    out = {"moving_fraction": float(reg.mean())}
    for key, sel in (("moving", reg), ("frame", np.ones_like(reg))):
        e, m, r = _ratio(err, ms, sel, min_motion_px)
        out[f"field_agreement_{key}"] = float(np.clip(1.0 - r, 0.0, 1.0)) if r == r else float("nan")
        out[f"relative_epe_{key}"] = r
        out[f"epe_{key}"] = e
        out[f"src_motion_{key}"] = m
        out[f"gen_motion_{key}"] = float(mg[sel].mean()) if sel.any() else float("nan")
    return out
