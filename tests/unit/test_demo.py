"""The demo pipeline end to end on tiny random models (plumbing, outputs, report), plus its bad inputs."""
import json

import pytest

from moaw_core.demo import DemoConfig, run_demo


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
