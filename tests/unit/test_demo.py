"""The demo pipeline end to end on tiny random models (plumbing, outputs, report), plus its bad inputs."""
import json

import torch

import pytest

from moaw_core.cli.demo import DemoConfig, run_demo


@pytest.fixture(scope="module")
def models(tiny_model_files):
    return tiny_model_files


def _cfg(models, out, **kw):
    base = dict(out=str(out), generator=str(models / "gen.safetensors"), tracker=str(models / "trk.safetensors"),
                codec=str(models / "codec.safetensors"), clips=("object_right",), seeds=(0, 1), gen_steps=2,
                tracker_steps=1, layers="block.1")
    base.update(kw)
    return DemoConfig(**base)


def test_demo_writes_report_gif_and_grid(models, tmp_path):
    report = run_demo(_cfg(models, tmp_path), progress=False)
    assert (tmp_path / "transfer_object_right.gif").stat().st_size > 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["layers"] == ["block.1"] == report["layers"]
    assert len(on_disk["runs"]) == 2
    for metric in ("motion_fidelity", "trajectory_shape"):
        s = on_disk["summary"][metric]
        assert s["plain"]["n"] == 2 and -1.0 <= s["injected"]["mean"] <= 1.0
    assert on_disk["settings"]["strength"] == 0.5 and on_disk["settings"]["normalize"] is True and on_disk["timings_s"]["generations"] == 4


def test_strength_zero_changes_nothing(models, tmp_path):
    report = run_demo(_cfg(models, tmp_path, strength=0.0, seeds=(0,)), progress=False)
    run = report["runs"][0]
    assert run["plain"] == run["injected"]


def test_demo_bad_inputs(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="generator model file"):
        run_demo(_cfg(models, tmp_path, generator=str(tmp_path / "missing.safetensors")), progress=False)
    with pytest.raises(ValueError, match="unknown clip"):
        run_demo(_cfg(models, tmp_path, clips=("nope",)), progress=False)
    with pytest.raises(ValueError, match="unknown layer"):
        run_demo(_cfg(models, tmp_path, layers="block.9"), progress=False)


def test_untrackable_generation_scores_zero_not_nan():
    """A generated video LK cannot track (flat) has no defined motion fidelity: the run scores 0, flagged."""
    import numpy as np
    from moaw_core.tracking.cv_trackers import track_points_lk
    from moaw_core.cli.demo import _queries, score_against_source
    from moaw_core.data.sources import synthetic_source
    clip = synthetic_source(100_000, camera="static", objects="right", speed=2.0)
    T, H, W, _ = clip.video.shape
    q = _queries(clip, 4)
    pts, vis = track_points_lk(clip.video, q)
    flat = score_against_source(pts, vis, torch.zeros_like(clip.video), q, (H, W))
    assert flat["untrackable"] and flat["motion_fidelity"] == 0.0 and np.isfinite(flat["trajectory_shape"])
    same = score_against_source(pts, vis, clip.video, q, (H, W))
    assert not same["untrackable"] and same["motion_fidelity"] > 0.9


def test_demo_cli_defaults_are_the_config_defaults():
    from moaw_core.__main__ import build_parser
    args = build_parser().parse_args(["demo"])
    d = DemoConfig()
    assert (args.normalize, args.remove_content, args.strength, args.end, args.layers) == \
        (d.normalize, d.remove_content, d.strength, d.end, d.layers)
    assert build_parser().parse_args(["demo", "--no-remove-content"]).remove_content is False
