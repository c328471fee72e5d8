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


def test_sintel_eval_rows(files, tmp_path):
    """A Sintel-layout case (4 frames, .flo ground truth, occlusion / invalid masks) written here: every row is
    scored, the refined ones on the full-resolution pair and on frames 2-4."""
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    from moaw_core.cli.evaluate import evaluate_sintel

    case = tmp_path / "clean" / "easy"
    (case / "gt" / "occlusions").mkdir(parents=True)
    (case / "gt" / "invalid").mkdir()
    g = np.random.default_rng(0)
    base = (g.random((40, 100, 3)) * 255).astype(np.uint8)
    for i in range(1, 5):
        cv2.imwrite(str(case / f"frame_{i:04d}.png"), np.roll(base, i, axis=1))  # 1 px right per frame
    flow = np.zeros((40, 100, 2), np.float32)
    flow[..., 0] = 1.0
    with open(case / "gt" / "frame_0002.flo", "wb") as f:
        f.write(np.float32(202021.25).tobytes() + np.int32(100).tobytes() + np.int32(40).tobytes() + flow.tobytes())
    for sub in ("occlusions", "invalid"):
        cv2.imwrite(str(case / "gt" / sub / "frame_0002.png"), np.zeros((40, 100), np.uint8))
    res = evaluate_sintel(files[0], files[1], tmp_path, work_height=16)
    row = res["clean/easy"]
    assert set(row) == {"zero", "dis_full", "dis_16px", "tracker_16px", "tracker_refined", "tracker_refined_3f"}
    assert abs(row["zero"] - 1.0) < 1e-4 and all(np.isfinite(v) for v in row.values())
    assert "tracker_refined" not in evaluate_sintel(files[0], files[1], tmp_path, work_height=16,
                                                     refine=False)["clean/easy"]
    with pytest.raises(FileNotFoundError, match="sintel root"):
        evaluate_sintel(files[0], files[1], tmp_path / "nope")


def test_real_clips_eval_with_pseudo_ground_truth(files, tmp_path):
    """A folder of frames (a texture translating 2 px right per frame at 128 px, judged at 32 px: 0.5 px) and a
    stray file: zero flow scores the motion, DIS much less; the tracker rows are there and finite; a bad folder
    fails with a clear message (also from the CLI, before anything runs)."""
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    from moaw_core.cli import evaluate as E

    g = np.random.default_rng(0)
    big = cv2.GaussianBlur(g.random((128, 200)).astype(np.float32), (0, 0), 2.0)
    big = ((big - big.min()) / (big.max() - big.min()) * 220 + 20).astype(np.uint8)
    clip = tmp_path / "clips" / "pan"
    clip.mkdir(parents=True)
    for t in range(5):
        cv2.imwrite(str(clip / f"{t:03d}.png"), np.repeat(big[:, 40 - 2 * t:168 - 2 * t, None], 3, -1))
    (tmp_path / "clips" / "notes.txt").write_text("not a clip")
    res = E.evaluate_real_clips(None, files[1], tmp_path / "clips", height=32, starts=(0,), gaps=(1, 2))
    row = res["clips"]["pan"]
    assert set(row) == {"valid", "motion", "zero", "dis"} and row["valid"] > 0.5
    assert abs(row["motion"] - 0.75) < 0.1 and row["dis"] < 0.5 * row["zero"]  # (0.5 + 1.0) / 2 px at 32 px
    res = E.evaluate_real_clips(files[0], files[1], tmp_path / "clips", height=32, starts=(0,), gaps=(1,),
                                run=TrackerRun(window=4, work_height=16))
    assert {"tracker_pair", "tracker_3f", "tracker_frozen"} <= set(res["mean"])
    assert all(np.isfinite(v) for v in res["mean"].values()) and "tracker_frozen" in E.markdown(None, None, real=res)
    with pytest.raises(FileNotFoundError, match="real clips: no such folder"):
        E.evaluate_real_clips(None, files[1], tmp_path / "nope")
    with pytest.raises(ValueError, match="real clips: no videos"):
        E.real_clip_files(clip)
    with pytest.raises(ValueError, match="long enough"):
        E.evaluate_real_clips(None, files[1], tmp_path / "clips", height=32, starts=(4,), gaps=(1,))
