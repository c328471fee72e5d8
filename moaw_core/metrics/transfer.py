"""Score a motion transfer: one call gives every motion figure of a generated video against its source.

    from moaw_core.metrics import score_transfer
    scores = score_transfer(source_video, generated_video, fg_mask=None)

Tracks: a grid of query points inside the source's foreground (``fg_mask``; :func:`query_points`), or over
the whole frame without a mask, tracked in source and generation by the same tracker. The default, ``"dis"``,
chains dense DIS flow: every track has a position at every frame, so no step is ever dropped (the
forward-backward check is only reported, as ``tracked_fraction_*``). ``"lk"`` (pyramidal Lucas-Kanade) loses
points; a lost step counts as no agreement (``fidelity.motion_fidelity``, ``lost="zero"``).
Figures: DMT motion fidelity, DeT trajectory shape, motion-field agreement inside the moving region and over
the frame (``field.motion_field_agreement``), the generation's temporal consistency. Videos are
[T, H, W, 3] float RGB in [0, 1] (numpy or torch), source and generation of the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moaw_core.metrics import _arrays
from moaw_core.metrics.appearance import temporal_consistency
from moaw_core.metrics.field import motion_field_agreement, moving_region
from moaw_core.metrics.fidelity import motion_fidelity, query_points, trajectory_shape

TRACKERS = ("dis", "lk")
MIN_POINTS = 4  # fewer moving / foreground query points than this: fall back to the whole grid
STATIC_PX = 0.1  # steps shorter than this (px/frame) count as "no motion" (DIS leaves ~0.1 px on still areas)


@dataclass
class SourceMotion:
    """What a source contributes to every score, computed once: flows, query points, tracks, moving region."""

    video: np.ndarray          # [T, H, W, 3]
    flows: np.ndarray          # [T-1, H, W, 2] forward DIS flow
    backward: np.ndarray       # [T-1, H, W, 2] backward DIS flow
    queries: np.ndarray        # [N, 2] (x, y) frame-0 query points
    points: np.ndarray         # [N, T, 2] source tracks
    visible: np.ndarray        # [N, T] bool
    region: np.ndarray         # [T-1, H, W] bool moving region
    tracker: str
    query_region: str          # "foreground mask" | "foreground box" | "moving points" | "full frame"


def _check_tracker(tracker: str) -> str:
    if tracker not in TRACKERS:
        raise ValueError(f"tracker: expected one of {TRACKERS}, got {tracker!r}")
    return tracker


def _queries(mask: np.ndarray | None, h: int, w: int, grid: int) -> tuple[np.ndarray, str]:
    if mask is None or not mask.any():
        return query_points(np.ones((h, w)), grid), "full frame"
    q = query_points(mask, grid)
    inside = mask[np.clip(np.round(q[:, 1]).astype(int), 0, h - 1), np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)]
    return q, ("foreground mask" if inside.all() else "foreground box")


def track_video(video, queries, tracker: str = "dis", flows=None, backward=None) -> tuple[np.ndarray, np.ndarray]:
    """Track ``queries`` [N, 2] through ``video`` with the evaluation tracker (precomputed DIS flows reused).

    Returns:
        (points [N, T, 2] float32, visible [N, T] bool).
    """
    from moaw_core.tracking.cv_trackers import chain_flows, track_points_lk, video_flows

    _check_tracker(tracker)
    if tracker == "lk":
        return track_points_lk(video, queries)
    if flows is None:
        flows, backward = video_flows(video, backward=True)
    return chain_flows(flows, queries, backward)


def _mask(fg_mask, shape) -> np.ndarray | None:
    if fg_mask is None:
        return None
    m = _arrays.as_np(fg_mask, "fg_mask").astype(np.float64) > 0.5
    T, H, W = shape[:3]
    if m.shape not in ((H, W), (T, H, W)):
        raise ValueError(f"fg_mask: expected [H, W] = {(H, W)} or [T, H, W] = {(T, H, W)}, got {m.shape}")
    return m


def prepare_source(source_video, fg_mask=None, grid: int = 16, tracker: str = "dis",
                   moving_px: float = 0.5) -> SourceMotion:
    """Flows, query points, tracks and moving region of a source video, for :func:`score_transfer`.

    Args:
        source_video: [T>=2, H, W, 3]. fg_mask: optional [H, W] (frame 0) or [T, H, W] foreground mask;
            query points on its frame-0 foreground; a [T, H, W] mask is also the moving region (frames 0..T-2),
            else the moving region is where the source flow exceeds ``moving_px``. Without a mask the query
            points are the grid points whose source track moves ``moving_px`` px/frame or more on average
            (the whole grid when fewer than ``MIN_POINTS`` do: a still source).
        grid: points per side of the query grid (>= 2). tracker: "dis" | "lk".
    """
    from moaw_core.tracking.cv_trackers import video_flows

    v = _arrays.video(source_video, "source_video", min_frames=2)
    _check_tracker(tracker)
    if int(grid) < 2:
        raise ValueError(f"grid: expected >= 2 points per side, got {grid}")
    m = _mask(fg_mask, v.shape)
    flows, backward = video_flows(v, backward=True)
    q, where = _queries(None if m is None else (m if m.ndim == 2 else m[0]), v.shape[1], v.shape[2], int(grid))
    pts, vis = track_video(v, q, tracker, flows, backward)
    if m is None:  # no mask: the moving points stand in for the foreground (a still background would dominate)
        steps = np.linalg.norm(np.diff(pts, axis=1), axis=-1).mean(axis=1)
        if int((steps >= moving_px).sum()) >= MIN_POINTS:
            keep = steps >= moving_px
            q, pts, vis, where = q[keep], pts[keep], vis[keep], "moving points"
    region = m[:-1] if (m is not None and m.ndim == 3) else moving_region(flows, moving_px)
    return SourceMotion(v, flows, backward, q, pts, vis, region, tracker, where)


def score_transfer(source, generated_video, fg_mask=None, grid: int = 16, tracker: str = "dis",
                   static_px: float = STATIC_PX, return_tracks: bool = False, lost: str = "zero") -> dict:
    """Every motion figure of ``generated_video`` against ``source``.

    Args:
        source: source video [T, H, W, 3] or a :class:`SourceMotion` from :func:`prepare_source` (then
            ``fg_mask``, ``grid`` and ``tracker`` come from it and must be left at their defaults).
        generated_video: [T, H, W, 3], same shape as the source.
        fg_mask, grid, tracker: as :func:`prepare_source`. static_px: zero-length guard (px per frame).
        return_tracks: also return ``gen_points`` / ``gen_visible`` arrays (for drawing).
        lost: "zero" (a lost LK step is no agreement) or "ignore" (the old, wrong rule: average over the steps
            both trackers kept; only for showing that the control tests catch it). No effect with "dis".
    Returns:
        dict of floats: motion_fidelity, gen_to_src, src_to_gen (DMT); trajectory_shape, ts_cosine_term,
        ts_frechet_term (DeT hybrid, alpha 0.5, seeded); field_agreement_moving / _frame, relative_epe_*,
        epe_* (px), src_motion_*, gen_motion_* (px/frame), moving_fraction; temporal_consistency and
        photometric_error of the generation; tracked_fraction_src / _gen (steps passing the tracker's own
        check); num_points; and the strings tracker and query_region.
    """
    if isinstance(source, SourceMotion):
        if fg_mask is not None or int(grid) != 16 or tracker != "dis":
            raise ValueError("fg_mask, grid, tracker: leave at their defaults when source is a SourceMotion "
                             "(they were fixed by prepare_source)")
        src = source
    else:
        src = prepare_source(source, fg_mask, grid, tracker)
    if static_px < 0:
        raise ValueError(f"static_px: expected >= 0, got {static_px}")
    gen = _arrays.video(generated_video, "generated_video", min_frames=2)
    _arrays.same_shape(src.video, gen, "source", "generated_video")
    return _score(src, gen, static_px, return_tracks, lost)


def _score(src: SourceMotion, gen: np.ndarray, static_px: float, return_tracks: bool, lost: str) -> dict:
    from moaw_core.tracking.cv_trackers import video_flows

    T, H, W = gen.shape[:3]
    flows, backward = video_flows(gen, backward=True)
    pts, vis = track_video(gen, src.queries, src.tracker, flows, backward)
    # DIS tracks have a position at every frame: every step counts. LK's lost steps count as no agreement.
    sv, gv = (src.visible, vis) if src.tracker == "lk" else (None, None)
    eps = max(static_px, 1e-6)
    mf = motion_fidelity(src.points, pts, sv, gv, eps=eps, lost=lost)
    ts = trajectory_shape(src.points, pts, image_size=(H, W), seed=0, eps=eps / max(H, W),
                          src_visible=sv, gen_visible=gv, lost=lost)
    out = {"motion_fidelity": mf["motion_fidelity"], "gen_to_src": mf["gen_to_src"], "src_to_gen": mf["src_to_gen"],
           "trajectory_shape": ts["trajectory_shape"], "ts_cosine_term": ts["cosine_term"],
           "ts_frechet_term": ts["frechet_term"]}
    out.update(motion_field_agreement(src.flows, flows, region=src.region))
    out.update(temporal_consistency(gen, flows))
    steps = [float((v[:, 1:] & v[:, :-1]).mean()) for v in (src.visible, vis)]
    out.update({"tracked_fraction_src": steps[0], "tracked_fraction_gen": steps[1],
                "num_points": float(len(src.queries)), "tracker": src.tracker, "query_region": src.query_region})
    if return_tracks:
        out["gen_points"], out["gen_visible"] = pts, vis
    return out
