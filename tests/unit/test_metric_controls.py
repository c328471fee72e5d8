"""Controls for the transfer scorer (`moaw_core.metrics.score_transfer`): videos whose answer is known.

The scorer is only correct when every control lands where it should, on synthetic clips (always) and on the
real clips in ../shared/data/clips (skipped when that folder is absent). Thresholds (default DIS tracker):

| figure | high controls (self, same motion in other colours / texture) | low controls |
|---|---|---|
| motion fidelity (DMT) | >= 0.95 | frozen, noise <= 0.5; reversed, different motion <= 0.75 |
| trajectory shape (DeT hybrid) | >= 0.95 | <= 0.9 (its Frechet term is high for every small motion) |
| field agreement, moving region and frame | >= 0.5 | <= 0.05 |

DMT's best match over many tracks is lenient (a source track finds some noise track that agrees by chance), so
its low bounds are loose; the field agreement separates every control by a wide margin. Planted bugs (lost LK
points ignored; queries on the static background) must make a control fail, and an independent reference
implementation, a second tracker and the synthetic clips' exact tracks must agree with the module.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import moaw_core.metrics as M
from moaw_core.data.sources import synthetic_source

ROOT = Path(__file__).resolve().parents[2]
CLIPS = next((p for p in (ROOT.parent / "shared" / "data" / "clips", ROOT.parents[1] / "shared" / "data" / "clips")
              if p.is_dir()), ROOT.parent / "shared" / "data" / "clips")
# Frame stride per real clip so that 8 frames at 64 x 64 move by about 0.5-3 px per frame.
REAL_STRIDES = {"pips2_camel": 24, "tav_car-turn": 4, "tav_man-skiing": 2, "tav_man-surfing": 2,
                "tav_rabbit-watermelon": 12}

HIGH = {"motion_fidelity": 0.95, "trajectory_shape": 0.95, "field_agreement_moving": 0.5,
        "field_agreement_frame": 0.5}
LOW = {"motion_fidelity": {"frozen": 0.5, "noise": 0.5, "reversed": 0.75, "different": 0.75},
       "trajectory_shape": {k: 0.9 for k in ("frozen", "noise", "reversed", "different")},
       "field_agreement_moving": {k: 0.05 for k in ("frozen", "noise", "reversed", "different")},
       "field_agreement_frame": {k: 0.05 for k in ("frozen", "noise", "reversed", "different")}}
SYNTH = (("object_right", 100_000, "static", "right", "down"), ("object_down", 100_001, "static", "down", "left"),
         ("pan_left", 100_002, "pan_left", "none", "tilt_up"))


@functools.lru_cache(None)
def _synth_case(name: str) -> dict:
    """Source, mask, high controls (recoloured; a pan: another scene under the same pan) and a different motion."""
    _, seed, camera, objects, other = next(c for c in SYNTH if c[0] == name)
    clip = synthetic_source(seed, camera=camera, objects=objects)
    video = clip.video.numpy()
    high = {"self": video, "recolour": M.recolour(video)}
    if objects == "none":
        high["other_texture"] = synthetic_source(seed + 7, camera=camera, objects="none").video.numpy()
        different = synthetic_source(seed, camera=other, objects="none")
    else:
        different = synthetic_source(seed, camera=camera, objects=other)
    mask = (clip.layer_index[0] > 0).numpy() if objects != "none" else None
    return {"video": video, "mask": mask, "high": high, "different": different.video.numpy(), "clip": clip,
            "different_clip": different}


def _real_video(name: str) -> np.ndarray:
    from moaw_core.data.real import load_video

    s = REAL_STRIDES[name]
    return load_video(CLIPS / f"{name}.mp4", max_frames=8 * s, size=(64, 64)).numpy()[::s]


@functools.lru_cache(None)
def _real_case(name: str) -> dict:
    names = sorted(REAL_STRIDES)
    video = _real_video(name)
    return {"video": video, "mask": None, "high": {"self": video, "recolour": M.recolour(video)},
            "different": _real_video(names[(names.index(name) + 1) % len(names)])}


def _controls(case: dict) -> dict:
    low = M.control_videos(case["video"], seed=0)
    low["different"] = case["different"]
    return low


def _case(kind: str, name: str) -> dict:
    return _synth_case(name) if kind == "synth" else _real_case(name)


@functools.lru_cache(None)
def _scores(kind: str, name: str, tracker: str = "dis") -> dict:
    """Every high and low control of one clip scored against it (cached: several tests read them)."""
    case = _case(kind, name)
    src = M.prepare_source(case["video"], case["mask"], tracker=tracker)
    videos = {**case["high"], **_controls(case)}
    return {k: M.score_transfer(src, v) for k, v in videos.items()}


def _check_controls(kind: str, name: str) -> None:
    case, scores = _case(kind, name), _scores(kind, name)
    table = {k: {f: round(s[f], 3) for f in HIGH} for k, s in scores.items()}
    for fig, lo in HIGH.items():
        for k in case["high"]:
            assert scores[k][fig] >= lo, f"{k} {fig} {scores[k][fig]:.3f} < {lo}; all: {table}"
        for k, hi in LOW[fig].items():
            assert scores[k][fig] <= hi, f"{k} {fig} {scores[k][fig]:.3f} > {hi}; all: {table}"


def _need_clips():
    if not all((CLIPS / f"{n}.mp4").is_file() for n in REAL_STRIDES):
        pytest.skip(f"real clips not found in {CLIPS}")


# ------------------------------------------------------------------ the controls
@pytest.mark.parametrize("name", [c[0] for c in SYNTH])
def test_controls_on_synthetic_clips(name):
    _check_controls("synth", name)


@pytest.mark.parametrize("name", sorted(REAL_STRIDES))
def test_controls_on_real_clips(name):
    _need_clips()
    _check_controls("real", name)


def test_temporal_consistency_controls():
    scores = _scores("synth", "object_right")
    assert all(scores[k]["temporal_consistency"] >= 0.95 for k in ("self", "recolour", "reversed", "different"))
    assert scores["noise"]["temporal_consistency"] <= 0.8
    assert scores["frozen"]["temporal_consistency"] == pytest.approx(1.0)  # consistency is not motion


# ------------------------------------------------------------------ planted bugs
def test_planted_bug_lost_points_ignored_lets_noise_pass():
    """LK loses most points on noise; averaging over the kept steps only (the old metric) scores noise high."""
    fixed, bug = [], []
    for name in ("object_right", "object_down", "pan_left"):
        case = _synth_case(name)
        noise = M.uniform_noise(case["video"], seed=0)
        src = M.prepare_source(case["video"], case["mask"], tracker="lk")
        fixed.append(M.score_transfer(src, noise)["motion_fidelity"])
        bug.append(M.score_transfer(src, noise, lost="ignore")["motion_fidelity"])
    limit = LOW["motion_fidelity"]["noise"]
    assert max(fixed) <= limit, fixed
    assert max(bug) > limit, bug  # the noise control catches the bug
    assert np.mean(bug) > np.mean(fixed) + 0.3


def test_planted_bug_lost_points_ignored_on_real_clips():
    _need_clips()
    limit = LOW["motion_fidelity"]["noise"]
    for name in sorted(REAL_STRIDES):
        case = _real_case(name)
        noise = M.uniform_noise(case["video"], seed=0)
        src = M.prepare_source(case["video"], tracker="lk")
        assert M.score_transfer(src, noise)["motion_fidelity"] <= limit, name
        assert M.score_transfer(src, noise, lost="ignore")["motion_fidelity"] > limit, name


def test_planted_bug_static_background_queries_let_a_frozen_video_pass():
    """Query points over the whole frame (a still background) instead of the foreground: frozen scores high."""
    case = _synth_case("object_right")
    frozen = M.frozen(case["video"])
    good = M.score_transfer(case["video"], frozen, fg_mask=case["mask"])
    everywhere = M.score_transfer(case["video"], frozen, fg_mask=np.ones(case["mask"].shape))
    assert good["motion_fidelity"] <= LOW["motion_fidelity"]["frozen"]
    assert everywhere["motion_fidelity"] > LOW["motion_fidelity"]["frozen"]
    assert everywhere["field_agreement_moving"] <= 0.05  # the field figure is not fooled either way


# ------------------------------------------------------------------ independent checks
def _reference_dmt(src, gen, eps):
    """Plain-loop DMT motion fidelity on tracks [N, T, 2] (all steps counted), written from the paper."""
    def corr(a, b):
        total = 0.0
        for t in range(a.shape[0] - 1):
            u, v = a[t + 1] - a[t], b[t + 1] - b[t]
            nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
            if nu < eps and nv < eps:
                total += 1.0
            elif nu >= eps and nv >= eps:
                total += float(u @ v) / (nu * nv)
        return total / (a.shape[0] - 1)

    c = np.array([[corr(s, g) for g in gen] for s in src])
    return 0.5 * (c.max(axis=0).mean() + c.max(axis=1).mean())


def test_reference_implementation_agrees_on_the_controls():
    case = _synth_case("object_down")
    src = M.prepare_source(case["video"], case["mask"])
    for name, video in {**case["high"], **_controls(case)}.items():
        pts, _ = M.track_video(video, src.queries)
        ref = _reference_dmt(src.points.astype(np.float64), pts.astype(np.float64), M.transfer.STATIC_PX)
        got = M.score_transfer(src, video)["motion_fidelity"]
        assert got == pytest.approx(ref, abs=1e-9), name


def test_second_tracker_orders_the_controls_the_same_way():
    """LK (lost steps counted) scores lower than DIS where it loses points, but ranks every high control above
    every low control on every clip, as DIS does."""
    names = [("synth", c[0]) for c in SYNTH]
    if all((CLIPS / f"{n}.mp4").is_file() for n in REAL_STRIDES):
        names += [("real", n) for n in sorted(REAL_STRIDES)]
    for kind, name in names:
        case = _case(kind, name)
        for tracker in ("dis", "lk"):
            s = {k: v["motion_fidelity"] for k, v in _scores(kind, name, tracker).items()}
            high = min(s[k] for k in case["high"])
            low = max(s[k] for k in ("frozen", "reversed", "noise", "different"))
            assert high > low + 0.1, (kind, name, tracker, s)


def test_exact_tracks_agree_with_the_tracker():
    """On synthetic clips the renderer's exact tracks give a tracker-free score: DIS-based within 0.1 of it."""
    for name in ("object_right", "object_down", "pan_left"):
        case = _synth_case(name)
        src = M.prepare_source(case["video"], case["mask"])
        q = np.round(src.queries).astype(int)

        def exact(clip):
            return clip.tracks.xy[:, q[:, 1], q[:, 0]].permute(1, 0, 2).numpy().astype(np.float64)

        gt_src = exact(case["clip"])
        pairs = {"self": gt_src, "frozen": np.repeat(gt_src[:, :1], gt_src.shape[1], 1),
                 "different": exact(case["different_clip"])}
        videos = {"self": case["video"], "frozen": M.frozen(case["video"]), "different": case["different"]}
        for k, gt_gen in pairs.items():
            ref = M.motion_fidelity(gt_src, gt_gen, eps=M.transfer.STATIC_PX)["motion_fidelity"]
            got = M.score_transfer(src, videos[k])["motion_fidelity"]
            assert abs(got - ref) <= 0.1, (name, k, got, ref)
