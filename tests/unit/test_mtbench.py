"""MTBench harness: the DeT difficulty measure on synthetic trajectories with known groups, case discovery and
its bad inputs, and the harness end to end on one real case with tiny random models."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from moaw_core.cli.bench import difficulty, find_cases, run_mtbench, sample_frames, trajectory_clusters

MTBENCH = Path(__file__).resolve().parents[3] / "shared" / "data" / "mtbench"


def _groups(n_groups: int, per_group: int = 12, T: int = 16, noise: float = 0.002, seed: int = 0) -> np.ndarray:
    """[T, N, 3] normalised trajectories: group g moves straight at 0.02/frame in direction 2*pi*g/n_groups."""
    rng = np.random.default_rng(seed)
    tracks = []
    for g in range(n_groups):
        a = 2 * math.pi * g / n_groups
        v = 0.02 * np.array([math.cos(a), math.sin(a)])
        start = rng.uniform(0.3, 0.7, (per_group, 1, 2))
        tracks.append(start + np.arange(T)[None, :, None] * v + rng.normal(0, noise, (per_group, T, 2)))
    xy = np.concatenate(tracks).transpose(1, 0, 2)
    return np.concatenate([xy, np.ones(xy.shape[:2] + (1,))], -1).astype(np.float32)


def test_one_group_is_easy():
    k, labels = trajectory_clusters(_groups(1))
    assert k == 1 and difficulty(k) == "easy" and (labels == 0).all() and len(labels) == 12


def test_three_and_seven_groups():
    k3, labels = trajectory_clusters(_groups(3))
    assert k3 == 3 and difficulty(k3) == "easy"
    assert all(len(set(labels[g * 12:(g + 1) * 12])) == 1 for g in range(3))  # each group is one cluster
    k7, _ = trajectory_clusters(_groups(7))
    assert k7 == 7 and difficulty(k7) == "hard"


def test_structureless_spread_is_one_cluster():
    rng = np.random.default_rng(1)  # i.i.d. per-frame jitter: large spread, no groups -> silhouette floor
    xy = 0.5 + rng.normal(0, 0.05, (16, 40, 2))
    assert trajectory_clusters(xy)[0] == 1


def test_deterministic_for_a_seed_and_uses_visibility():
    t = _groups(4, noise=0.02, seed=3)
    a, b = trajectory_clusters(t, seed=5), trajectory_clusters(torch.from_numpy(t), seed=5)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    t[:, 0, 2] = 0.0          # one track never visible: dropped
    t[5:9, 1, 2] = 0.0        # a gap: interpolated, same answer
    k, labels = trajectory_clusters(t)
    assert k == 4 and len(labels) == t.shape[1] - 1


def test_difficulty_thresholds_and_bad_inputs():
    assert [difficulty(k) for k in (1, 3, 4, 6, 7, 10)] == ["easy", "easy", "medium", "medium", "hard", "hard"]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k:"):
            difficulty(bad)
    good = _groups(2)
    for bad, match in ((good[..., 0], "expected"), (np.zeros((16, 5, 4)), "expected"),
                       (good[:1], "T>=2"), (good * 100, "normalised"), (np.full((4, 3, 2), np.nan), "NaN")):
        with pytest.raises(ValueError, match=match):
            trajectory_clusters(bad)
    with pytest.raises(ValueError, match="k_max"):
        trajectory_clusters(good, k_max=0)
    with pytest.raises(ValueError, match="query_frame"):
        trajectory_clusters(good, query_frame=15)
    invisible = good.copy()
    invisible[..., 2] = 0
    with pytest.raises(ValueError, match="no track is visible"):
        trajectory_clusters(invisible)


def test_sample_frames():
    idx = sample_frames(49, 8, 1)
    assert idx[0] == 1 and idx[-1] == 48 and len(idx) == 8 and (np.diff(idx) > 0).all()
    for bad in (1, 49):
        with pytest.raises(ValueError, match="frames"):
            sample_frames(49, bad, 1)


def test_case_discovery_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="cases_dir"):
        find_cases(tmp_path / "missing")
    with pytest.raises(ValueError, match="no case folders"):
        run_mtbench(tmp_path, out_dir=tmp_path / "out")  # fails before any model is loaded
    (tmp_path / "notacase" / "videos").mkdir(parents=True)
    with pytest.raises(ValueError, match="not in MTBench layout.*notacase.*trajectories/notacase.pth"):
        find_cases(tmp_path)


@pytest.fixture(scope="module")
def models(tiny_model_files):
    return tiny_model_files


@pytest.mark.skipif(not (MTBENCH / "dance-twirl").is_dir(), reason="shared MTBench sample data not present")
def test_bench_cli_end_to_end_one_real_case(models, tmp_path):
    from moaw_core.__main__ import main

    out = tmp_path / "out"
    rc = main(["bench", "--cases", str(MTBENCH / "dance-twirl"), "--out", str(out), "--seeds", "0",
               "--generator", str(models / "gen.safetensors"), "--tracker", str(models / "trk.safetensors"),
               "--codec", str(models / "codec.safetensors"), "--gen-steps", "2", "--tracker-steps", "1",
               "--layers", "block.1", "--frames", "6", "--size", "32", "--grid", "4"])
    assert rc == 0
    report = json.loads((out / "mtbench.json").read_text())
    case = report["cases"][0]
    assert case["name"] == "dance-twirl" and case["difficulty"] == difficulty(case["k"])
    assert case["frames"][0] == 1 and case["frames"][-1] == 48 and len(case["frames"]) == 6
    assert case["num_src_tracks"] == 100 and 0 < case["num_points"] <= 16 and len(case["eval_prompts"]) == 5
    assert case["query_region"] in ("foreground mask", "foreground box")
    assert len(report["runs"]) == 1 and report["layers"] == ["block.1"] and "no text" in report["text_conditioning"]
    s = report["summary"]
    assert s["all"]["cases"] == 1 and s[case["difficulty"]]["runs"] == 1
    for metric in ("motion_fidelity", "trajectory_shape", "field_agreement_moving"):
        for kind in ("plain", "injected", "noise", "frozen", "reversed"):
            assert -1.0 <= s["all"][metric][kind]["mean"] <= 1.0 and s["all"][metric][kind]["n"] == 1
    assert s["all"]["field_agreement_moving"]["frozen"]["mean"] == 0.0  # a still video is no better than still
    md = (out / "mtbench.md").read_text()
    assert "| difficulty | cases | row | MF | TS | FA moving | FA frame |" in md
    assert "| all | 1 | control: noise |" in md and md.count("\n| ") == 1 + 2 * 5  # its difficulty and all


def test_cli_defaults_match_the_bench_settings():
    """The bench CLI injects with BenchSettings' defaults (the T2V pair's tuned settings, normalise on), and both
    flags can be turned off."""
    from moaw_core.__main__ import build_parser
    from moaw_core.cli.bench import BenchSettings
    args = build_parser().parse_args(["bench", "--cases", "x"])
    d = BenchSettings()
    assert (args.normalize, args.remove_content, args.strength, args.end) == (d.normalize, d.remove_content, d.strength, d.end)
    assert build_parser().parse_args(["bench", "--cases", "x", "--no-normalize"]).normalize is False
