"""Careless CLI input: one line `error: ...` on stderr, exit code 2, before any model is loaded or any frame
decoded (docs/BAD_INPUTS.md lists the cases); `--debug` shows the traceback; bundled models are found from any
folder."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moaw_core.__main__ import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *argv):
    rc = main(list(argv))
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    """A folder of 3 PNG frames, and one with a single frame."""
    import cv2

    base = tmp_path_factory.mktemp("frames")
    for name, n in (("three", 3), ("one", 1)):
        (base / name).mkdir()
        for i in range(n):
            cv2.imwrite(str(base / name / f"{i:03d}.png"), np.full((64, 64, 3), 40 * i, np.uint8))
    return base


@pytest.fixture(scope="module")
def fake_pipeline(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipe")
    (base / "model_index.json").write_text("{}")
    (base / "source.mp4").write_bytes(b"not read: the size check comes first")
    return base


def _cases(video_dir, pipe):
    three = str(video_dir / "three")
    return [
        (["predict", three, "--size", "16384", "16384"], "predict on 3 frames of 16384x16384 needs about"),
        (["predict", three, "--work-height", "0", "--size", "2048", "2048"], "196,608 tokens, more than --max-tokens"),
        (["predict", three, "--steps", "0"], "steps: expected an integer >= 1, got 0"),
        (["predict", three, "--steps", "-1"], "steps: expected an integer >= 1, got -1"),
        (["predict", three, "--max-frames", "-1"], "max-frames: expected an integer >= 0"),
        (["predict", three, "--refine-max-height", "-1"], "refine-max-height: expected an integer >= 0"),
        (["predict", three, "--base-smooth", "-1"], "base-smooth: expected an integer >= 0"),
        (["predict", three, "--refine-smooth", "-3"], "refine-smooth: expected an integer >= 0"),
        (["predict", three, "--window", "1"], "window: expected an integer >= 2"),
        (["predict", three, "--size", "4", "4"], "size: expected an integer >= 8"),
        (["predict", str(video_dir / "one")], "has 1 frame(s); tracking needs at least 2"),
        (["predict", three, "--tracker", "/nonexistent.safetensors"], "--tracker: no such file"),
        (["eval", "--num-clips", "-1"], "num-clips: expected an integer >= 0, got -1"),
        (["eval", "--num-clips", "0", "--scenes3d", "0"], "nothing to evaluate"),
        (["eval", "--grid", "0"], "grid: expected an integer >= 1"),
        (["eval", "--base-smooth", "-1"], "base-smooth: expected an integer >= 0"),
        (["eval", "--real-clips", "/nonexistent"], "real clips: no such folder"),
        (["eval", "--real-height", "8", "--real-clips", "x"], "real-height: expected an integer >= 16"),
        (["train", "--still-camera", "2"], "still_camera: expected a fraction in [0, 1]"),
        (["train", "--short-clips", "1.5"], "short_clips: expected a fraction in [0, 1]"),
        (["train", "--task", "track", "--graft", "x.safetensors"], "graft/graft_base: task 'track' takes both"),
        (["train", "--steps", "0"], "steps: expected an integer >= 1, got 0"),
        (["train", "--steps", "-1"], "steps: expected an integer >= 1, got -1"),
        (["train", "--lr", "nan"], "lr: expected a finite number"),
        (["score", "--tracker", "x", "--frames", "1"], "frames: expected an integer >= 2"),
        (["transfer", "--pipeline", str(pipe), "--source", str(pipe / "source.mp4"), "--prompt", "p",
          "--frames", "100001"], "transfer at 100001 frames of 480x832 needs about"),
        (["transfer", "--pipeline", str(pipe), "--source", str(pipe / "source.mp4"), "--prompt", "p",
          "--start", "0.5", "--end", "0.5"], "window is empty"),
    ]


def test_bad_cli_input_is_one_line_and_exit_2(capsys, video_dir, fake_pipeline, monkeypatch):
    import moaw_core.cli.predict as predict
    import moaw_core.cli.transfer as transfer

    def no_work(*a, **k):
        raise AssertionError("a model was loaded for a request that should have been refused")

    monkeypatch.setattr(predict, "predict_video", no_work)  # refusals come before any model is loaded
    monkeypatch.setattr(transfer, "load_pipeline", no_work)
    for argv, expected in _cases(video_dir, fake_pipeline):
        rc, err = _run(capsys, *argv)
        assert rc == 2, (argv, rc, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (argv, err)
        assert "Traceback" not in err and len(lines[0]) <= 610


def test_debug_shows_the_traceback(capsys, video_dir):
    with pytest.raises(ValueError, match="steps"):
        main(["--debug", "predict", str(video_dir / "three"), "--steps", "0"])
    with pytest.raises(ValueError, match="steps"):
        main(["predict", str(video_dir / "three"), "--steps", "0", "--debug"])


def test_process_exit_code_and_bundled_models_from_another_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "moaw_core", "predict", "missing.mp4"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    # the bundled tracker and codec were found from tmp_path; the only complaint is the missing video
    assert res.stderr.strip().splitlines()[-1] == "error: load_video: file not found: missing.mp4", res.stderr


def test_default_model_paths_are_next_to_the_package():
    for verb in (["predict", "v.mp4"], ["eval"]):
        args = build_parser().parse_args(verb)
        for name in ("tracker", "codec"):
            path = Path(getattr(args, name))
            assert path.is_absolute() and path.is_file() and path.parent.parent == ROOT / "models", path


def test_unexpected_errors_are_named_and_point_to_debug():
    from moaw_core.__main__ import one_line

    assert one_line(KeyError("x")) == "KeyError: 'x' (a bug? rerun with --debug and report the traceback)"
    assert one_line(ValueError("a\n  b")) == "a b"
    assert len(one_line(ValueError("x" * 10_000))) == 600


def test_half_decodable_video_warns_with_counts(tmp_path, caplog):
    import cv2

    from moaw_core.data.real import load_video

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    writer.release()
    data = path.read_bytes()
    (tmp_path / "half.avi").write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="moaw"):
        video = load_video(tmp_path / "half.avi")
    assert 1 <= video.shape[0] < 20
    assert f"only {video.shape[0]} of the 20 frames" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="moaw"):
        assert load_video(path, max_frames=8).shape[0] == 8
    assert caplog.text == ""
    (tmp_path / "cut.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError, match="could not decode any frame"):
        load_video(tmp_path / "cut.mp4")


def test_frames_failing_mid_stream_are_an_error():
    from moaw_core.data.real import _decode_frames

    class Capture:  # a stream whose third frame cannot be decoded
        def __init__(self, _):
            self.i = 0

        def isOpened(self):
            return True

        def get(self, _):
            return 5

        def grab(self):
            self.i += 1
            return self.i <= 5

        def retrieve(self):
            return (self.i != 3, np.zeros((4, 4, 3), np.uint8))

        def release(self):
            pass

    class CV2:
        CAP_PROP_FRAME_COUNT = 7
        VideoCapture = Capture

    with pytest.raises(ValueError, match="1 frame\\(s\\) of x.mp4 failed to decode \\(first at frame 2\\); 4 decoded"):
        _decode_frames(CV2, Path("x.mp4"), 100)
