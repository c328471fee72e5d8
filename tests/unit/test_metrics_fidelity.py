"""Known-answer tests for moaw_core.metrics.fidelity / .tracking on given tracks (DMT, Frechet, TAP-Vid, EPE)."""

import functools
import math

import numpy as np
import pytest
import torch

import moaw_core.metrics as M


def _random_walks(n=12, t=9, seed=0):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 100, (n, 1, 2))
    return np.concatenate([start, start + np.cumsum(rng.normal(0, 2, (n, t - 1, 2)), 1)], 1)


def _parallel_lines(n=6, t=8, direction=(1.0, 0.5)):
    speeds = np.linspace(1, 3, n)[:, None, None]
    start = np.stack([np.arange(n) * 10.0, np.arange(n) * 7.0], -1)[:, None]
    return start + speeds * np.arange(t)[None, :, None] * np.array(direction)


# ------------------------------------------------------------------ motion fidelity
def test_identical_tracks_score_one():
    p = _random_walks()
    r = M.motion_fidelity(p, p.copy())
    assert r["motion_fidelity"] == pytest.approx(1.0, abs=1e-12)
    assert r["gen_to_src"] == pytest.approx(1.0) and r["src_to_gen"] == pytest.approx(1.0)
    assert M.motion_fidelity(torch.from_numpy(p), torch.from_numpy(p))["motion_fidelity"] == pytest.approx(1.0)


def test_time_reversed_straight_motion_scores_minus_one():
    p = _parallel_lines()
    assert M.motion_fidelity(p, p[:, ::-1])["motion_fidelity"] == pytest.approx(-1.0, abs=1e-9)
    walks = _random_walks()
    own = np.diag(M.displacement_cosine_matrix(walks, walks[:, ::-1]))
    assert abs(own.mean()) < 0.3  # a reversed random walk no longer matches itself
    assert M.motion_fidelity(walks, walks[:, ::-1])["motion_fidelity"] < 0.6


def test_rotated_90_degrees_scores_zero():
    p = _parallel_lines()
    rot = p @ np.array([[0.0, 1.0], [-1.0, 0.0]])  # (x, y) -> (-y, x)
    assert M.motion_fidelity(p, rot)["motion_fidelity"] == pytest.approx(0.0, abs=1e-9)


def test_hand_computed_asymmetric_case():
    t = np.arange(5.0)[:, None]
    right = np.hstack([t, 0 * t])
    down = np.hstack([0 * t, t])
    r = M.motion_fidelity(np.stack([right, down]), right[None])
    assert r["gen_to_src"] == pytest.approx(1.0)  # gen "right" finds src "right"
    assert r["src_to_gen"] == pytest.approx(0.5)  # src: right -> 1, down -> 0
    assert r["motion_fidelity"] == pytest.approx(0.75)


def test_zero_length_displacement_guard():
    static = np.zeros((3, 6, 2)) + 5.0
    moving = _parallel_lines(3, 6)
    assert M.motion_fidelity(static, static)["motion_fidelity"] == pytest.approx(1.0)
    r = M.motion_fidelity(static, moving)
    assert not any(math.isnan(v) for v in r.values())
    assert r["motion_fidelity"] == pytest.approx(0.0)


def test_order_and_translation_invariance_and_visibility():
    p = _random_walks(n=10)
    perm = np.random.default_rng(1).permutation(10)
    base = M.motion_fidelity(p, p[perm] + np.array([30.0, -12.0]))
    assert base["motion_fidelity"] == pytest.approx(1.0)
    # Garbage positions while the generated track is lost do not count as motion, but the two lost steps
    # (3->4, 4->5) count as no agreement: 6 of 8 steps agree.
    g = p.copy()
    gv = np.ones(p.shape[:2], bool)
    g[:, 4] += 50.0
    gv[:, 4] = False
    r = M.motion_fidelity(p, g, gen_visible=gv)
    assert r["motion_fidelity"] == pytest.approx(6 / 8)
    assert r["visible_steps_gen"] == pytest.approx(6 / 8) and r["visible_steps_src"] == 1.0
    # The old rule (average over the kept steps only) would call this a perfect match.
    assert M.motion_fidelity(p, g, gen_visible=gv, lost="ignore")["motion_fidelity"] == pytest.approx(1.0)
    assert M.motion_fidelity(p, g)["motion_fidelity"] < 0.9


def test_lost_steps_never_raise_the_score():
    """A track kept for one step only: with lost steps counted it cannot score above 1/(T-1)."""
    p = _parallel_lines(n=4, t=9)
    gv = np.zeros(p.shape[:2], bool)
    gv[:, :2] = True  # only step 0->1 tracked
    r = M.motion_fidelity(p, p, gen_visible=gv)
    assert r["motion_fidelity"] == pytest.approx(1 / 8)
    assert M.motion_fidelity(p, p, gen_visible=gv, lost="ignore")["motion_fidelity"] == pytest.approx(1.0)
    none = np.zeros(p.shape[:2], bool)
    assert M.motion_fidelity(p, p, gen_visible=none)["motion_fidelity"] == 0.0  # not NaN
    with pytest.raises(ValueError, match="lost: expected one of"):
        M.motion_fidelity(p, p, lost="drop")


def test_motion_fidelity_bad_inputs():
    with pytest.raises(ValueError, match="gen_points: expected T=9"):
        M.motion_fidelity(_random_walks(t=9), _random_walks(t=8))
    with pytest.raises(ValueError, match="src_points: expected 3 dims"):
        M.motion_fidelity(np.zeros((4, 2)), _random_walks())
    with pytest.raises(ValueError, match="visibility: expected shape"):
        M.motion_fidelity(_random_walks(), _random_walks(), src_visible=np.ones((3, 3), bool))


def test_grid_in_box():
    mask = np.zeros((40, 60))
    mask[10:21, 30:51] = 1
    mask[15, 35] = 0  # holes inside the box do not matter
    pts = M.grid_in_box(mask, 3)
    assert pts.shape == (9, 2)
    np.testing.assert_allclose(pts[:3], [[30, 10], [40, 10], [50, 10]])
    np.testing.assert_allclose(pts[-1], [50, 20])
    np.testing.assert_allclose(M.grid_in_box(mask, 1), [[40, 15]])
    with pytest.raises(ValueError, match="empty mask"):
        M.grid_in_box(np.zeros((5, 5)), 3)


def test_query_points_keep_the_foreground():
    mask = np.zeros((40, 40))
    yy, xx = np.mgrid[0:40, 0:40]
    mask[(xx - 20) ** 2 + (yy - 20) ** 2 <= 100] = 1  # a disc: box corners are background
    box = M.grid_in_box(mask, 8)
    q = M.query_points(mask, 8)
    assert 4 <= len(q) < len(box)
    assert all(mask[int(round(y)), int(round(x))] for x, y in q)
    thin = np.zeros((40, 40))
    thin[5, 5:30] = 1  # too few grid points land on it: the whole box grid
    assert len(M.query_points(thin, 4)) == 16


# ------------------------------------------------------------------ Frechet
def _frechet_bruteforce(P, Q):
    @functools.lru_cache(None)
    def c(i, j):
        d = float(np.linalg.norm(P[i] - Q[j]))
        if i == 0 and j == 0:
            return d
        if i == 0:
            return max(c(0, j - 1), d)
        if j == 0:
            return max(c(i - 1, 0), d)
        return max(min(c(i - 1, j), c(i - 1, j - 1), c(i, j - 1)), d)
    return c(len(P) - 1, len(Q) - 1)


def test_frechet_known_answers():
    x = np.linspace(0, 10, 11)
    line = np.stack([x, 0 * x], -1)
    assert M.discrete_frechet(line, line + [0.0, 2.5]) == pytest.approx(2.5)
    curve = np.stack([x, np.sin(x)], -1)
    assert M.discrete_frechet(curve, curve) == 0.0
    # Worked by hand: couplings (P0,Q0)=1, then Q1=(1,1) is sqrt(2) from both P vertices.
    P = np.array([[0.0, 0.0], [2.0, 0.0]])
    Q = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    assert M.discrete_frechet(P, Q) == pytest.approx(math.sqrt(2.0))
    assert M.discrete_frechet([[0.0, 0.0]], [[3.0, 4.0], [0.0, 1.0]]) == pytest.approx(5.0)


def test_frechet_matches_bruteforce_and_is_symmetric():
    rng = np.random.default_rng(3)
    for _ in range(10):
        P, Q = rng.normal(size=(rng.integers(1, 9), 2)), rng.normal(size=(rng.integers(1, 9), 2))
        assert M.discrete_frechet(P, Q) == pytest.approx(_frechet_bruteforce(P, Q), abs=1e-12)
        assert M.discrete_frechet(P, Q) == pytest.approx(M.discrete_frechet(Q, P), abs=1e-12)


# ------------------------------------------------------------------ trajectory shape
def test_trajectory_shape_identical_and_invariances():
    p = _random_walks(n=20)
    same = M.trajectory_shape(p, p, image_size=(100, 120))
    assert same["trajectory_shape"] == pytest.approx(1.0)
    assert same["mean_frechet_distance"] > 0  # different tracks still differ
    perm = np.random.default_rng(2).permutation(20)
    moved = M.trajectory_shape(p, p[perm] + np.array([17.0, -4.0]), num_tracks=50, image_size=(100, 120))
    assert moved["trajectory_shape"] == pytest.approx(1.0)


def test_trajectory_shape_hand_value_and_seed():
    src = np.array([[[0.0, 0.0], [0.05, 0.0], [0.1, 0.0]]])
    gen = np.array([[[0.3, 0.3], [0.4, 0.3], [0.5, 0.3]]])  # same direction, twice as far
    r = M.trajectory_shape(src, gen, alpha=0.5)
    assert r["cosine_term"] == pytest.approx(1.0)
    assert r["frechet_term"] == pytest.approx(math.exp(-0.1))
    assert r["trajectory_shape"] == pytest.approx(0.5 + 0.5 * math.exp(-0.1))
    a, b = _random_walks(n=80, seed=4), _random_walks(n=70, seed=5)
    r1 = M.trajectory_shape(a, b, num_tracks=10, seed=7, image_size=(100, 100))
    assert r1 == M.trajectory_shape(a, b, num_tracks=10, seed=7, image_size=(100, 100))
    assert r1["num_sampled"] == 20


def test_trajectory_shape_bad_inputs():
    with pytest.raises(ValueError, match="image_size: points look like pixel"):
        M.trajectory_shape(_random_walks(), _random_walks())
    with pytest.raises(ValueError, match="alpha"):
        M.trajectory_shape(_random_walks(), _random_walks(), alpha=2, image_size=(10, 10))


# ------------------------------------------------------------------ tracking / flow
def test_track_metrics_perfect_and_offset():
    gt = _random_walks(n=8, t=6)
    vis = np.ones(gt.shape[:2], bool)
    r = M.track_metrics(gt, vis, gt, vis)
    assert r["delta_avg"] == 1.0 and r["occlusion_accuracy"] == 1.0
    assert r["average_jaccard"] == 1.0 and r["mean_position_error"] == 0.0
    pred = gt + np.array([3.0, 0.0])
    pred[:, 0] += 100.0  # the query frame is not evaluated
    r = M.track_metrics(pred, vis, gt, vis)
    assert (r["delta_1"], r["delta_2"], r["delta_4"], r["delta_8"], r["delta_16"]) == (0, 0, 1, 1, 1)
    assert r["delta_avg"] == pytest.approx(0.6)
    assert r["mean_position_error"] == pytest.approx(3.0)
    assert r["average_jaccard"] == pytest.approx(0.6)


def test_track_metrics_occlusion_hand_count():
    gt = np.zeros((1, 5, 2))
    gv = np.array([[True, True, True, True, False]])
    pv = np.ones((1, 5), bool)
    r = M.track_metrics(gt, pv, gt, gv)
    assert r["occlusion_accuracy"] == pytest.approx(3 / 4)  # frames 1..4
    assert r["delta_avg"] == 1.0
    assert r["average_jaccard"] == pytest.approx(3 / 4)  # TP 3 / (GT 3 + FP 1)
    with pytest.raises(ValueError, match="pred_points: expected shape"):
        M.track_metrics(gt[:, :4], pv[:, :4], gt, gv)


def test_flow_epe():
    gt = np.random.default_rng(0).normal(size=(6, 7, 2))
    r = M.flow_epe(gt + np.array([0.3, 0.4]), gt)
    assert r["epe"] == pytest.approx(0.5) and r["px1"] == 1.0
    pred = gt.copy()
    pred[:3] += np.array([3.0, 4.0])
    r = M.flow_epe(pred, gt)
    assert r["epe"] == pytest.approx(2.5) and r["px1"] == pytest.approx(0.5) and r["px5"] == pytest.approx(0.5)
    valid = np.zeros((6, 7), bool)
    valid[3:] = True
    assert M.flow_epe(pred, gt, valid)["epe"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="valid: expected shape"):
        M.flow_epe(pred, gt, valid[:2])
