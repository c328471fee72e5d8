"""The figures that the verbs' reports (demo, bench, DeT apply, transfer) print, computed one way for all.

- `MOTION_KEYS` / `score_against_source`: every motion figure of one output against its prepared source
  (`transfer.score_transfer`), plus the output's tracks from the source's queries (for drawing).
- `summary_stats`: mean, sample std and n of a list of per-run values.
"""
from __future__ import annotations

import numpy as np

from moaw_core.metrics.transfer import SourceMotion, score_transfer

MOTION_KEYS = ("motion_fidelity", "trajectory_shape", "ts_cosine_term", "field_agreement_moving",
               "field_agreement_frame", "relative_epe_moving", "gen_motion_moving", "src_motion_moving",
               "temporal_consistency")


def score_against_source(src: SourceMotion, video) -> dict:
    """Every motion figure of `video` [T,H,W,3] against the prepared source (`metrics.prepare_source`): the
    `MOTION_KEYS` plus `points` / `visible`, the output's tracks from the source's queries (for drawing)."""
    s = score_transfer(src, video.numpy() if hasattr(video, "numpy") else video, return_tracks=True)
    out = {k: float(s[k]) for k in MOTION_KEYS}
    out["points"], out["visible"] = s["gen_points"], s["gen_visible"]
    return out


def summary_stats(values: list[float]) -> dict:
    """{"mean", "std" (sample, ddof 1; 0 for one value), "n"} of `values`."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}
