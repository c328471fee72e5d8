"""Motion fidelity between two sets of tracks: DMT motion fidelity (displacement cosines, symmetric best match)
and DeT's trajectory shape (cosine term + discrete Frechet term), plus query grids inside a foreground box/mask.

Every function here is pure: numpy arrays or torch tensors in, a dict of named Python floats out.
Coordinates are (x, y) in pixels unless a docstring says otherwise; sparse tracks are
``points [N, T, 2]`` with ``visible [N, T]`` (TAP-Vid / co-tracker order, see docs/CONVENTIONS.md).

Lost steps are never dropped silently: by default (``lost="zero"``) a step where either track of a pair is not
visible at t or t+1 counts as "no agreement" (cosine 0) and every pair is averaged over all T-1 steps, so a
tracker that loses points cannot raise the score. ``lost="ignore"`` (average over the common visible steps
only) is the old, wrong behaviour, kept so that tests can show the controls catch it.
"""

from __future__ import annotations

import numpy as np

from moaw_core.metrics._arrays import as_np as _as_np
from moaw_core.metrics._arrays import tracks as _tracks

_EPS = 1e-6  # displacements shorter than this (pixels or normalised units) count as "no motion"
_LOST = ("zero", "ignore")


def _unit_steps(p: np.ndarray, v: np.ndarray, eps: float):
    """Per-frame displacement unit vectors [N,T-1,2], zero mask [N,T-1], step-valid mask [N,T-1]."""
    d = p[:, 1:] - p[:, :-1]
    n = np.linalg.norm(d, axis=-1)
    zero = n < eps
    u = np.where(zero[..., None], 0.0, d / np.maximum(n, eps)[..., None])
    w = (v[:, 1:] & v[:, :-1]).astype(np.float64)
    return u, zero.astype(np.float64), w


def displacement_cosine_matrix(src_points, gen_points, src_visible=None, gen_visible=None,
                               eps: float = _EPS, lost: str = "zero") -> np.ndarray:
    """Pairwise track correlation: mean over frames of the cosine between per-frame displacements.

    Zero-length guard: a step shorter than ``eps`` is "no motion"; two static steps have cosine 1,
    a static step against a moving one has cosine 0. A step is visible for a track when it is visible
    at t and t+1. ``lost="zero"`` (default): a step not visible in both tracks of a pair adds 0 and
    every pair is averaged over all T-1 steps (lost = no agreement). ``lost="ignore"``: average over the
    steps visible in both only (NaN where there is none) -- lets a tracker that keeps one step score 1.

    Args:
        src_points: [N, T, 2] (x, y). gen_points: [M, T, 2] (x, y), same T.
        src_visible / gen_visible: optional [N, T] / [M, T] bool.
        eps: displacement length below which a step counts as static. lost: "zero" | "ignore".
    Returns:
        [N, M] float64 correlations in [-1, 1].
    """
    if lost not in _LOST:
        raise ValueError(f"lost: expected one of {_LOST}, got {lost!r}")
    ps, vs = _tracks(src_points, src_visible, "src_points")
    pg, vg = _tracks(gen_points, gen_visible, "gen_points")
    if ps.shape[1] != pg.shape[1]:
        raise ValueError(f"gen_points: expected T={ps.shape[1]} frames like src_points, got {pg.shape[1]}")
    us, zs, ws = _unit_steps(ps, vs, eps)
    ug, zg, wg = _unit_steps(pg, vg, eps)
    total = np.einsum("ntc,mtc->nm", us * ws[..., None], ug * wg[..., None])
    total += np.einsum("nt,mt->nm", zs * ws, zg * wg)
    if lost == "zero":
        return total / float(ps.shape[1] - 1)
    count = np.einsum("nt,mt->nm", ws, wg)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1.0), np.nan)


def _best_match_means(sim: np.ndarray) -> tuple[float, float]:
    """(mean over columns of best row, mean over rows of best column), NaN-aware."""
    s = np.where(np.isnan(sim), -np.inf, sim)
    col_best = s.max(axis=0)
    row_best = s.max(axis=1)
    col_best = col_best[np.isfinite(col_best)]
    row_best = row_best[np.isfinite(row_best)]
    c = float(col_best.mean()) if col_best.size else float("nan")
    r = float(row_best.mean()) if row_best.size else float("nan")
    return c, r


def motion_fidelity(src_points, gen_points, src_visible=None, gen_visible=None,
                    eps: float = _EPS, lost: str = "zero") -> dict:
    """DMT motion fidelity between source and generated tracks.

    score = 1/2 (mean over generated tracks of the best source correlation
                 + mean over source tracks of the best generated correlation),
    with correlations from :func:`displacement_cosine_matrix` (zero-length guard and lost steps documented
    there; by default a lost step counts as no agreement).

    Args:
        src_points: [N, T, 2] (x, y) pixels. gen_points: [M, T, 2] (x, y) pixels, same T.
        src_visible, gen_visible: optional [N, T] / [M, T] bool visibility.
        eps: displacement length below which a step counts as static. lost: "zero" | "ignore".
    Returns:
        dict(motion_fidelity, gen_to_src, src_to_gen, num_src, num_gen, visible_steps_src, visible_steps_gen);
        1.0 for identical tracks, about -1 for time-reversed straight motions, about 0 for motion rotated
        by 90 degrees or for a static video against a moving source.
    """
    sim = displacement_cosine_matrix(src_points, gen_points, src_visible, gen_visible, eps, lost)
    gen_to_src, src_to_gen = _best_match_means(sim)
    _, vs = _tracks(src_points, src_visible, "src_points")
    _, vg = _tracks(gen_points, gen_visible, "gen_points")
    return {
        "motion_fidelity": 0.5 * (gen_to_src + src_to_gen),
        "gen_to_src": gen_to_src,
        "src_to_gen": src_to_gen,
        "num_src": float(sim.shape[0]),
        "num_gen": float(sim.shape[1]),
        "visible_steps_src": float((vs[:, 1:] & vs[:, :-1]).mean()),
        "visible_steps_gen": float((vg[:, 1:] & vg[:, :-1]).mean()),
    }


def grid_in_box(mask, n: int) -> np.ndarray:
    """Query points on an n x n grid spanning the bounding box of a mask's foreground.

    Args:
        mask: [H, W] (bool or numbers; > 0.5 is foreground).
        n: points per side (>= 1); n == 1 gives the box centre.
    Returns:
        [n*n, 2] float32 (x, y) pixel positions, row-major (y outer, x inner).
    """
    m = _as_np(mask, "mask", ndim=2).astype(np.float64) > 0.5
    if int(n) < 1:
        raise ValueError(f"n: expected >= 1, got {n}")
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        raise ValueError("mask: expected at least one foreground pixel, got an empty mask")
    n = int(n)
    if n == 1:
        gx = np.array([(xs.min() + xs.max()) / 2.0])
        gy = np.array([(ys.min() + ys.max()) / 2.0])
    else:
        gx = np.linspace(xs.min(), xs.max(), n)
        gy = np.linspace(ys.min(), ys.max(), n)
    yy, xx = np.meshgrid(gy, gx, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=-1).astype(np.float32)


def query_points(mask, n: int, min_inside: int = 4) -> np.ndarray:
    """Query points for motion fidelity: the :func:`grid_in_box` grid of the mask's box, keeping the points
    on foreground pixels (so the static background around an object does not vote); the whole box grid
    when fewer than ``min_inside`` of its points are on the foreground (thin or tiny masks).

    Args:
        mask: [H, W] (> 0.5 is foreground). n: points per side of the box grid. min_inside: see above.
    Returns:
        [K, 2] float32 (x, y) pixel positions, K <= n*n.
    """
    m = _as_np(mask, "mask", ndim=2).astype(np.float64) > 0.5
    pts = grid_in_box(m, n)
    ix = np.clip(np.round(pts[:, 0]).astype(int), 0, m.shape[1] - 1)
    iy = np.clip(np.round(pts[:, 1]).astype(int), 0, m.shape[0] - 1)
    keep = m[iy, ix]
    return pts[keep] if int(keep.sum()) >= min_inside else pts


def _frechet_batch(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Discrete Frechet distance for a batch: P [B, T, 2], Q [B, S, 2] -> [B].

    Dynamic programming over anti-diagonals (all cells of one diagonal at once):
    C[i, j] = max(d(P_i, Q_j), min(C[i-1, j], C[i, j-1], C[i-1, j-1])), 1-indexed with an inf border.
    """
    B, T, S = P.shape[0], P.shape[1], Q.shape[1]
    D = np.linalg.norm(P[:, :, None, :] - Q[:, None, :, :], axis=-1)  # [B, T, S]
    C = np.full((B, T + 1, S + 1), np.inf)
    C[:, 0, 0] = 0.0
    for k in range(2, T + S + 1):
        i = np.arange(max(1, k - S), min(T, k - 1) + 1)
        j = k - i
        prev = np.minimum(np.minimum(C[:, i - 1, j], C[:, i, j - 1]), C[:, i - 1, j - 1])
        C[:, i, j] = np.maximum(D[:, i - 1, j - 1], prev)
    return C[:, T, S]


def discrete_frechet(P, Q) -> float:
    """Discrete Frechet distance (Eiter & Mannila 1994) between two polylines.

    Args:
        P: [T, 2], Q: [S, 2] points (any consistent units); T, S >= 1.
    Returns:
        The smallest, over monotone couplings of the vertices, of the largest coupled distance.
    """
    p = _as_np(P, "P", ndim=2).astype(np.float64)
    q = _as_np(Q, "Q", ndim=2).astype(np.float64)
    if p.shape[0] < 1 or q.shape[0] < 1 or p.shape[1] != q.shape[1]:
        raise ValueError(f"P, Q: expected [T>=1, d] and [S>=1, d] with equal d, got {p.shape}, {q.shape}")
    return float(_frechet_batch(p[None], q[None])[0])


def normalise_trajectories(points, image_size=None) -> np.ndarray:
    """Trajectory normalisation used by :func:`trajectory_shape`.

    x is divided by W and y by H (skipped when ``image_size`` is None: points are then taken as
    already normalised, like MTBench's x/W, y/H files), then each track's frame-0 position is
    subtracted, so the result describes shape and extent only (translation invariant).

    Args:
        points: [N, T, 2] (x, y). image_size: (H, W) or None.
    Returns:
        [N, T, 2] float64, each track starting at (0, 0).
    """
    p, _ = _tracks(points, None, "points")
    if image_size is None:
        if np.abs(p).max() > 4.0:
            raise ValueError("image_size: points look like pixel coordinates (|x| > 4); "
                             "pass image_size=(H, W) or normalise them to [0, 1]")
    else:
        h, w = image_size
        if h <= 0 or w <= 0:
            raise ValueError(f"image_size: expected positive (H, W), got {image_size}")
        p = p / np.array([w, h], dtype=np.float64)
    return p - p[:, :1]


def trajectory_shape(src_points, gen_points, alpha: float = 0.5, num_tracks: int = 50, seed: int = 0,
                     image_size=None, eps: float = _EPS, src_visible=None, gen_visible=None,
                     lost: str = "zero") -> dict:
    """DeT "hybrid" trajectory score with a true discrete Frechet distance.

    score = alpha * cosine_term + (1 - alpha) * frechet_term, where
      cosine_term  = :func:`motion_fidelity` on all tracks (displacement cosines, symmetric best match;
                     visibility and ``lost`` as there);
      frechet_term = 1/2 (mean over sampled gen tracks of max_src e^(-d_F)
                          + mean over sampled src tracks of max_gen e^(-d_F)),
    d_F the discrete Frechet distance of :func:`normalise_trajectories` outputs. ``num_tracks`` tracks
    are drawn without replacement from each set with ``np.random.default_rng(seed)`` (all if fewer).

    Args:
        src_points: [N, T, 2] (x, y). gen_points: [M, T, 2] (x, y), same T.
        alpha: weight of the cosine term in [0, 1].
        num_tracks: tracks sampled per set for the Frechet term. seed: sampling seed.
        image_size: (H, W) in pixels, or None when points are already normalised to [0, 1].
        src_visible, gen_visible, lost: as :func:`motion_fidelity` (the Frechet term uses every position).
    Returns:
        dict(trajectory_shape, cosine_term, frechet_term, mean_frechet_distance, num_sampled).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    if int(num_tracks) < 1:
        raise ValueError(f"num_tracks: expected >= 1, got {num_tracks}")
    ns = normalise_trajectories(src_points, image_size)
    ng = normalise_trajectories(gen_points, image_size)
    cos = motion_fidelity(ns, ng, src_visible, gen_visible, eps=eps, lost=lost)["motion_fidelity"]
    rng = np.random.default_rng(seed)
    si = np.sort(rng.choice(ns.shape[0], min(num_tracks, ns.shape[0]), replace=False))
    gi = np.sort(rng.choice(ng.shape[0], min(num_tracks, ng.shape[0]), replace=False))
    a, b = ns[si], ng[gi]
    ia, ib = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    dist = _frechet_batch(a[ia.ravel()], b[ib.ravel()]).reshape(len(a), len(b))
    gen_to_src, src_to_gen = _best_match_means(np.exp(-dist))
    fre = 0.5 * (gen_to_src + src_to_gen)
    return {
        "trajectory_shape": alpha * cos + (1.0 - alpha) * fre,
        "cosine_term": cos,
        "frechet_term": fre,
        "mean_frechet_distance": float(dist.mean()),
        "num_sampled": float(len(a) + len(b)),
    }
