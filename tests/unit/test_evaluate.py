"""The eval verb's scoring on held-out 3-D scenes and MTBench (tiny random tracker: the plumbing, not quality)."""
from pathlib import Path

import pytest
import torch

from moaw_core.cli.evaluate import TrackerRun, evaluate_mtbench, evaluate_synthetic, markdown
from moaw_core.data.scenes3d import Scene3DConfig
from moaw_core.engine.checkpoint import save_model
from moaw_core.tracking.codecs import PatchPCACodec, TrackEncoding
from moaw_core.tracking.tracker import MoawTracker, build_wan

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
METHODS = ("tracker", "tracker_whole", "zero", "dis", "lk")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    codec.save(d / "codec.safetensors")
    tr = MoawTracker.from_generator(build_wan(num_layers=1).eval(), 32).eval()
    path = save_model(d / "t.safetensors", tr.backbone, "tracker", codec.codec_id, TrackEncoding(16.0, codec.codec_id, 16),
                      16, {"parameterization": "flow", "loss": "l1", "steps": 1, "init_noise": "zeros"}, "test", 1)
    return str(path), str(d / "codec.safetensors")


def test_scenes3d_eval_scores_every_method(files):
    res = evaluate_synthetic(*files, num_clips=1, grid=4, cfg=Scene3DConfig(frames=6, height=16, width=16),
                             methods=METHODS, run=TrackerRun(window=4, work_height=16))
    assert set(res["methods"]) == set(METHODS) and res["frames"] == 6
    zero, dis = res["methods"]["zero"], res["methods"]["dis"]
    assert 0 <= dis["delta_avg"] <= 1 and zero["mean_position_error"] > 0  # the scene moves
    assert set(res["seconds_per_clip"]) == set(METHODS) and "| tracker_whole |" in markdown(None, None, res)
    with pytest.raises(ValueError, match="methods: expected a subset"):
        evaluate_synthetic(*files, num_clips=1, methods=("raft",))


def test_mtbench_eval(files):
    if not (DATA / "mtbench").is_dir():
        pytest.skip(f"shared data folder {DATA} is missing")
    res = evaluate_mtbench(*files, DATA / "mtbench", frames=5, height=32, methods=("tracker", "zero", "lk"),
                           run=TrackerRun(window=4, work_height=16))
    assert set(res) == {"dance-twirl", "snowboard"}
    case = res["snowboard"]
    assert case["frames"] == 5 and case["size"] == [32, 48] and case["points"] > 50
    assert 0 <= case["zero"]["delta_avg"] < 1 and "MTBench snowboard" in markdown(None, None, None, res)
    with pytest.raises(FileNotFoundError, match="cases_dir"):
        evaluate_mtbench(*files, DATA / "no_such_folder", methods=("zero",))
