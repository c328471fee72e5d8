"""Tests for moaw_core.data.real: .flo I/O, real-data loaders on ../shared/data, synthetic .npz loaders,
and clear errors for bad files."""
from pathlib import Path

import numpy as np
import pytest
import torch

from moaw_core.data.real import (FLO_MAGIC, load_mtbench_case, load_pointodyssey_anno, load_sintel_case,
                            load_tapvid_npz, load_video, read_flo, write_flo)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def need_data(*parts) -> Path:
    path = DATA.joinpath(*parts)
    if not DATA.is_dir():
        pytest.skip(f"shared data folder {DATA} is missing")
    return path


def test_flo_round_trip(tmp_path):
    flow = torch.randn(5, 7, 2)
    write_flo(tmp_path / "a.flo", flow)
    assert (tmp_path / "a.flo").stat().st_size == 12 + 5 * 7 * 8
    assert torch.equal(read_flo(tmp_path / "a.flo"), flow)


def test_flo_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="read_flo: file not found"):
        read_flo(tmp_path / "missing.flo")
    bad = tmp_path / "bad.flo"
    bad.write_bytes(np.array([1.0], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(32))
    with pytest.raises(ValueError, match="wrong magic"):
        read_flo(bad)
    write_flo(tmp_path / "ok.flo", torch.zeros(4, 6, 2))
    raw = (tmp_path / "ok.flo").read_bytes()
    (tmp_path / "trunc.flo").write_bytes(raw[:-8])
    with pytest.raises(ValueError, match=r"truncated: 196 bytes, expected 204 for 6x4"):
        read_flo(tmp_path / "trunc.flo")
    (tmp_path / "short.flo").write_bytes(raw[:6])
    with pytest.raises(ValueError, match="truncated: 6 bytes, expected a 12-byte header"):
        read_flo(tmp_path / "short.flo")
    (tmp_path / "neg.flo").write_bytes(np.array([FLO_MAGIC], "<f4").tobytes() + np.array([-1, 4], "<i4").tobytes())
    with pytest.raises(ValueError, match="implausible size"):
        read_flo(tmp_path / "neg.flo")
    with pytest.raises(ValueError, match=r"write_flo: flow expected \[H,W,2\], got \(4, 6, 3\)"):
        write_flo(tmp_path / "x.flo", torch.zeros(4, 6, 3))


def test_sintel_case_matches_reference_zero_flow_epe():
    case = load_sintel_case(need_data("sintel", "clean", "easy"))
    assert case.frames.shape == (4, 436, 1024, 3) and case.flow.shape == (436, 1024, 2)
    assert case.occluded.dtype == torch.bool and case.invalid.shape == (436, 1024)
    assert 0 < case.occluded.float().mean() < 0.2
    valid = ~case.invalid
    # data/README.md: zero-flow EPE over valid pixels is 2.98 px on clean/easy.
    assert abs(float(case.flow.norm(dim=-1)[valid].mean()) - 2.98) < 0.01


def test_sintel_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_sintel_case: folder not found"):
        load_sintel_case(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="frame_0001.png"):
        load_sintel_case(tmp_path)


def test_mtbench_case():
    case = load_mtbench_case(need_data("mtbench", "snowboard"), max_frames=6)
    T, H, W = 6, 480, 720
    assert case.video.shape == (T, H, W, 3) and case.trajectories.shape == (T, 100, 3)
    assert case.points.shape == (100, T, 2) and case.visible.shape == (100, T)
    assert case.masks.dtype == torch.bool and case.masks.shape[1:] == (H, W)
    assert torch.allclose(case.points[:, :, 0], case.trajectories[:, :, 0].T * W)
    assert case.visible[:, case.query_frame].all()  # queried at frame 1
    assert case.caption.startswith("A person is snowboarding") and len(case.eval_prompts) == 5
    # The frame-1 query points lie on the annotated foreground.
    p = case.points[:, 1].round().long()
    inside = case.masks[0][p[:, 1].clamp(0, H - 1), p[:, 0].clamp(0, W - 1)]
    assert inside.float().mean() > 0.9


def test_mtbench_missing_and_bad_trajectories(tmp_path):
    with pytest.raises(FileNotFoundError, match="load_mtbench_case: folder not found"):
        load_mtbench_case(tmp_path / "case")
    case = tmp_path / "case"
    (case / "videos").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="videos/case.mp4"):
        load_mtbench_case(case)


def write_video(path, frames):
    import cv2
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for f in frames:
        vw.write(f[..., ::-1])
    vw.release()


def test_load_video_file_and_folder(tmp_path):
    import cv2
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(5)[:, None, None] * 50  # red ramp over time
    write_video(tmp_path / "v.mp4", frames)
    v = load_video(tmp_path / "v.mp4")
    assert v.shape == (5, 32, 48, 3) and v.dtype == torch.float32
    assert abs(float(v[4, ..., 0].mean()) - 200 / 255) < 0.05  # RGB order, not BGR
    assert load_video(tmp_path / "v.mp4", max_frames=2, size=(16, 24)).shape == (2, 16, 24, 3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (2, 0, 1):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((8, 10, 3), i * 100, np.uint8))
    v = load_video(folder)
    assert v.shape == (3, 8, 10, 3) and torch.allclose(v[:, 0, 0, 0], torch.tensor([0, 100, 200]) / 255)
    with pytest.raises(ValueError, match="no image files"):
        load_video(_empty(tmp_path))
    with pytest.raises(FileNotFoundError, match="load_video: file not found"):
        load_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="could not decode any frame"):
        load_video(tmp_path / "junk.mp4")
    with pytest.raises(ValueError, match="size: expected"):
        load_video(folder, size=(8,))


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_load_video_real_clip():
    v = load_video(need_data("clips", "tav_car-turn.mp4"), max_frames=3, size=(64, 64))
    assert v.shape == (3, 64, 64, 3) and 0 <= v.min() and v.max() <= 1 and v.std() > 0.05


def test_tapvid_npz(tmp_path):
    T, H, W, N = 4, 10, 20, 3
    pts = np.random.default_rng(0).random((N, T, 2)).astype(np.float32)
    occ = np.zeros((N, T), bool)
    occ[1, 2] = True
    video = np.zeros((T, H, W, 3), np.uint8)
    np.savez(tmp_path / "a.npz", video=video, points=pts, occluded=occ)
    v, p, vis = load_tapvid_npz(tmp_path / "a.npz")
    assert v.shape == (T, H, W, 3) and p.shape == (N, T, 2) and vis.dtype == torch.bool
    assert torch.allclose(p, torch.from_numpy(pts) * torch.tensor([W, H]))  # auto: normalised -> px
    assert not vis[1, 2] and vis.sum() == N * T - 1
    _, p_px, _ = load_tapvid_npz(tmp_path / "a.npz", coords="pixels")
    assert torch.allclose(p_px, torch.from_numpy(pts))
    np.savez(tmp_path / "b.npz", video=video, points=pts * 5, occluded=occ)
    assert torch.allclose(load_tapvid_npz(tmp_path / "b.npz")[1], torch.from_numpy(pts * 5))
    np.savez(tmp_path / "c.npz", video=video, points=pts)
    with pytest.raises(ValueError, match=r"lacks keys \['occluded'\]"):
        load_tapvid_npz(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", video=video, points=pts[:, :2], occluded=occ[:, :2])
    with pytest.raises(ValueError, match=r"expected points \[N,4,2\]"):
        load_tapvid_npz(tmp_path / "d.npz")
    np.savez(tmp_path / "e.npz", video=video, points=np.array([{"a": 1}], dtype=object), occluded=occ)
    with pytest.raises(ValueError, match="without pickle"):
        load_tapvid_npz(tmp_path / "e.npz")
    with pytest.raises(ValueError, match="coords: expected"):
        load_tapvid_npz(tmp_path / "a.npz", coords="ndc")


def test_pointodyssey_anno(tmp_path):
    T, N = 5, 4
    trajs = np.random.default_rng(1).random((T, N, 2)).astype(np.float32) * 100
    visibs = np.ones((T, N), bool)
    visibs[3, 0] = False
    valids = np.ones((T, N), bool)
    valids[4, 2] = False
    np.savez(tmp_path / "anno.npz", trajs_2d=trajs, visibs=visibs, valids=valids)
    p, v = load_pointodyssey_anno(tmp_path / "anno.npz")
    assert p.shape == (N, T, 2) and v.shape == (N, T)
    assert torch.equal(p[2, 1], torch.from_numpy(trajs[1, 2]))
    assert not v[0, 3] and not v[2, 4] and v.sum() == T * N - 2
    np.savez(tmp_path / "bad.npz", trajs_2d=trajs, visibs=visibs[:, :2])
    with pytest.raises(ValueError, match=r"expected trajs_2d \[T,N,2\] and visibs \[T,N\]"):
        load_pointodyssey_anno(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="load_pointodyssey_anno: file not found"):
        load_pointodyssey_anno(tmp_path / "none.npz")
