"""Tracker and optical-flow accuracy against ground truth: TAP-Vid point-tracking metrics and flow end-point error."""

from __future__ import annotations

import numpy as np

from moaw_core.metrics._arrays import as_np as _as_np
from moaw_core.metrics._arrays import tracks as _tracks


def track_metrics(pred_points, pred_visible, gt_points, gt_visible,
                  thresholds=(1, 2, 4, 8, 16)) -> dict:
    """TAP-Vid point-tracking metrics for tracks queried at frame 0 (as tapnet's compute_tapvid_metrics,
    query_mode "first", for one video).

    Evaluated entries are frames t >= 1 (the query frame 0 is excluded). A prediction is within k
    when its squared distance to the ground truth is < k^2 (strict, as tapnet).
      delta_<k>: fraction of GT-visible entries within k (predicted visibility ignored);
      delta_avg: mean of delta_<k>; mean_position_error: mean L2 error over GT-visible entries;
      occlusion_accuracy: fraction of all entries whose predicted visibility equals the GT;
      jaccard_<k> = TP / (TP + FP + FN): TP visible in both and within k; FP predicted visible but
      GT occluded or not within k; FN GT visible but not a TP; average_jaccard: mean of jaccard_<k>.
    Values with no entries to average over are NaN.

    Args:
        pred_points, gt_points: [N, T, 2] (x, y) pixels. pred_visible, gt_visible: [N, T] bool.
        thresholds: pixel thresholds k.
    Returns:
        dict of floats with the keys above.
    """
    pp, pv = _tracks(pred_points, pred_visible, "pred_points")
    gp, gv = _tracks(gt_points, gt_visible, "gt_points")
    if pp.shape != gp.shape:
        raise ValueError(f"pred_points: expected shape {gp.shape} like gt_points, got {pp.shape}")
    if not thresholds:
        raise ValueError("thresholds: expected at least one threshold")
    ev = np.ones_like(gv)
    ev[:, 0] = False
    vis = gv & ev
    pvis = pv & ev
    d2 = np.sum((pp - gp) ** 2, axis=-1)
    n_vis = vis.sum()

    def frac(num, den):
        return float(num / den) if den > 0 else float("nan")

    out = {"mean_position_error": frac(np.sqrt(d2)[vis].sum(), n_vis),
           "occlusion_accuracy": frac(((pv == gv) & ev).sum(), ev.sum())}
    deltas, jacs = [], []
    for k in thresholds:
        within = (d2 < float(k) ** 2) & vis
        deltas.append(frac(within.sum(), n_vis))
        tp = (within & pvis).sum()
        fp = (pvis & ~within).sum()
        jacs.append(frac(tp, n_vis + fp))
        out[f"delta_{k}"] = deltas[-1]
        out[f"jaccard_{k}"] = jacs[-1]
    out["delta_avg"] = float(np.mean(deltas))
    out["average_jaccard"] = float(np.mean(jacs))
    return out


def flow_epe(pred, gt, valid=None) -> dict:
    """End-point error of an optical flow field.

    Args:
        pred, gt: [H, W, 2] (dx, dy) pixels. valid: optional [H, W] bool; only True pixels count.
    Returns:
        dict(epe = mean L2 error, px1 / px3 / px5 = fraction of pixels with error < 1 / 3 / 5 px,
        num_valid).
    """
    p = _as_np(pred, "pred", ndim=3, last=2).astype(np.float64)
    g = _as_np(gt, "gt", ndim=3, last=2).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"pred: expected shape {g.shape} like gt, got {p.shape}")
    v = np.ones(g.shape[:2], bool) if valid is None else _as_np(valid, "valid", ndim=2).astype(bool)
    if v.shape != g.shape[:2]:
        raise ValueError(f"valid: expected shape {g.shape[:2]}, got {v.shape}")
    v = v & np.isfinite(g).all(-1) & np.isfinite(p).all(-1)
    if not v.any():
        raise ValueError("valid: no valid pixels with finite flow")
    e = np.linalg.norm(p - g, axis=-1)[v]
    return {"epe": float(e.mean()), "px1": float((e < 1).mean()), "px3": float((e < 3).mean()),
            "px5": float((e < 5).mean()), "num_valid": float(v.sum())}

