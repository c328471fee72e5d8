"""Loaders for real data with ground truth: Middlebury .flo, MPI-Sintel cases, MTBench cases, videos,
TAP-Vid .npz and PointOdyssey anno.npz. Each loader returns tensors per docs/CONVENTIONS.md and raises
FileNotFoundError / ValueError naming the file and what was wrong. No pickle: .npz is read with
allow_pickle=False, .pth with torch.load(weights_only=True).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

FLO_MAGIC = 202021.25
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _need_file(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: file not found: {path}")
    return path


def _need_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder not found: {path}")
    return path


# ----------------------------------------------------------------------------- .flo
def read_flo(path) -> torch.Tensor:
    """Read a Middlebury .flo file (float32 magic 202021.25, int32 W, int32 H, H*W*2 float32).

    Returns:
        flow [H,W,2] float32 (dx, dy) px.
    """
    path = _need_file(path, "read_flo")
    raw = path.read_bytes()
    if len(raw) < 12:
        raise ValueError(f"read_flo: {path} is truncated: {len(raw)} bytes, expected a 12-byte header")
    magic = float(np.frombuffer(raw, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise ValueError(f"read_flo: {path} has wrong magic {magic!r}, expected {FLO_MAGIC} (not a .flo file)")
    w, h = (int(v) for v in np.frombuffer(raw, "<i4", 2, 4))
    if not (0 < w < 100_000 and 0 < h < 100_000):
        raise ValueError(f"read_flo: {path} has implausible size W={w}, H={h}")
    need = 12 + 8 * w * h
    if len(raw) < need:
        raise ValueError(f"read_flo: {path} is truncated: {len(raw)} bytes, expected {need} for {w}x{h}")
    return torch.from_numpy(np.frombuffer(raw, "<f4", 2 * w * h, 12).reshape(h, w, 2).copy())


def write_flo(path, flow: torch.Tensor) -> None:
    """Write flow [H,W,2] (dx, dy) as a Middlebury .flo file."""
    if not isinstance(flow, (torch.Tensor, np.ndarray)) or flow.ndim != 3 or flow.shape[-1] != 2:
        got = tuple(flow.shape) if hasattr(flow, "shape") else type(flow).__name__
        raise ValueError(f"write_flo: flow expected [H,W,2], got {got}")
    arr = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else flow
    h, w, _ = arr.shape
    with open(path, "wb") as f:
        f.write(np.array([FLO_MAGIC], "<f4").tobytes())
        f.write(np.array([w, h], "<i4").tobytes())
        f.write(np.ascontiguousarray(arr, "<f4").tobytes())


# ----------------------------------------------------------------------------- images and video
def _read_image(path: Path, grey: bool = False) -> np.ndarray:
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {path}")
    return img if grey else img[..., ::-1]


def _to_video_tensor(frames: list[np.ndarray], size) -> torch.Tensor:
    import cv2
    if size is not None:
        h, w = size
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames]
    return torch.from_numpy(np.stack(frames)).float() / 255.0


def probe_video(path_or_dir) -> tuple[int, int, int]:
    """(frames, height, width) of a video file or frames folder without decoding it all (the container's
    declared frame count for files), so a caller can check sizes before loading."""
    import cv2
    path = Path(path_or_dir)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXT)
        if not files:
            raise ValueError(f"load_video: no image files ({', '.join(IMAGE_EXT)}) in folder {path}")
        h, w = _read_image(files[0]).shape[:2]
        return len(files), h, w
    path = _need_file(path, "load_video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"load_video: could not decode any frame from {path} (damaged, truncated or not a video)")
        return (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
    finally:
        cap.release()


def load_video(path_or_dir, max_frames: int | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Load a video file (via OpenCV) or a folder of images (sorted by name).

    Args:
        path_or_dir: video file or folder of .png/.jpg/... frames.
        max_frames: keep only the first max_frames frames.
        size: optional (height, width) to resize to (INTER_AREA).
    Returns:
        video [T,H,W,3] float32 in [0,1], RGB.
    """
    import cv2
    path = Path(path_or_dir)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size: expected (height, width) positive ints, got {size!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames: expected >= 1 or None, got {max_frames!r}")
    limit = max_frames or 10 ** 9
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXT)[:limit]
        if not files:
            raise ValueError(f"load_video: no image files ({', '.join(IMAGE_EXT)}) in folder {path}")
        frames = [_read_image(f) for f in files]
        if len({f.shape for f in frames}) > 1 and size is None:
            raise ValueError(f"load_video: images in {path} differ in size; pass size=(H, W)")
        return _to_video_tensor(frames, size)
    path = _need_file(path, "load_video")
    frames = _decode_frames(cv2, path, limit)
    return _to_video_tensor(frames, size)


def _decode_frames(cv2, path: Path, limit: int) -> list[np.ndarray]:
    """Up to `limit` RGB frames. A frame that fails to decode mid-stream is an error (the motion would jump);
    a stream that ends before the frame count its container declares is a logged warning with the counts."""
    cap = cv2.VideoCapture(str(path))
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    frames, failed = [], []
    try:
        while len(frames) < limit and cap.grab():
            ok, img = cap.retrieve()
            if ok and img is not None:
                frames.append(img[..., ::-1])
            else:
                failed.append(len(frames) + len(failed))
    finally:
        cap.release()
    if failed:
        raise ValueError(f"load_video: {len(failed)} frame(s) of {path} failed to decode (first at frame "
                         f"{failed[0]}); {len(frames)} decoded; re-encode the video (e.g. ffmpeg -i in -c:v libx264 "
                         f"out.mp4)")
    if not frames:
        raise ValueError(f"load_video: could not decode any frame from {path} (damaged, truncated or not a video)")
    if len(frames) < min(declared, limit):
        logging.getLogger("moaw").warning("load_video: only %d of the %d frames %s declares could be read (damaged "
                                          "or truncated file); using those %d", len(frames), declared, path,
                                          len(frames))
    return frames


# ----------------------------------------------------------------------------- Sintel
class SintelCase(NamedTuple):
    """frames [4,H,W,3]; flow [H,W,2] frame_0002 -> frame_0003; occluded, invalid [H,W] bool."""

    frames: torch.Tensor
    flow: torch.Tensor
    occluded: torch.Tensor
    invalid: torch.Tensor


def load_sintel_case(case_dir) -> SintelCase:
    """Load a case laid out as frame_0001..0004.png, gt/frame_0002.flo, gt/occlusions/frame_0002.png,
    gt/invalid/frame_0002.png (white = occluded / invalid), e.g. data/sintel/clean/easy."""
    case_dir = _need_dir(case_dir, "load_sintel_case")
    frames = [_read_image(_need_file(case_dir / f"frame_{i:04d}.png", "load_sintel_case")) for i in range(1, 5)]
    if len({f.shape for f in frames}) > 1:
        raise ValueError(f"load_sintel_case: frames in {case_dir} differ in size")
    flow = read_flo(_need_file(case_dir / "gt" / "frame_0002.flo", "load_sintel_case"))
    masks = [torch.from_numpy(_read_image(_need_file(case_dir / "gt" / sub / "frame_0002.png",
                                                     "load_sintel_case"), grey=True) > 127)
             for sub in ("occlusions", "invalid")]
    h, w = frames[0].shape[:2]
    for name, t in (("flow", flow), ("occlusions", masks[0]), ("invalid", masks[1])):
        if tuple(t.shape[:2]) != (h, w):
            raise ValueError(f"load_sintel_case: {name} in {case_dir} is {tuple(t.shape[:2])}, frames are {(h, w)}")
    return SintelCase(_to_video_tensor(frames, None), flow, masks[0], masks[1])


# ----------------------------------------------------------------------------- MTBench
@dataclass
class MTBenchCase:
    """One MTBench case.

    video [T,H,W,3]; masks [M,H,W] bool (DAVIS annotations as shipped: M may differ from T, time
    alignment is not documented); trajectories [T,N,3] raw (x/W, y/H, visibility; CoTracker3 pseudo
    ground truth queried at frame 1); points [N,T,2] px = (x*W, y*H); visible [N,T] bool;
    prompts (source prompts.txt lines), eval_prompts (target prompts), caption = prompts[0].
    """

    name: str
    video: torch.Tensor
    masks: torch.Tensor
    trajectories: torch.Tensor
    points: torch.Tensor
    visible: torch.Tensor
    prompts: list[str]
    eval_prompts: list[str]
    caption: str
    query_frame: int = 1


def _read_lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _need_file(path, "load_mtbench_case").read_text().splitlines() if ln.strip()]


def load_mtbench_case(case_dir, max_frames: int | None = None) -> MTBenchCase:
    """Load data/mtbench/<case>/: videos/<case>.mp4, masks/<case>/*.png, trajectories/<case>.pth,
    prompts.txt, eval_prompts.txt. See MTBenchCase for the returned fields."""
    case_dir = _need_dir(case_dir, "load_mtbench_case")
    name = case_dir.name
    video = load_video(_need_file(case_dir / "videos" / f"{name}.mp4", "load_mtbench_case"), max_frames)
    T, H, W, _ = video.shape
    traj_path = _need_file(case_dir / "trajectories" / f"{name}.pth", "load_mtbench_case")
    traj = torch.load(traj_path, map_location="cpu", weights_only=True)  # never unpickle code from user files
    if not isinstance(traj, torch.Tensor) or traj.ndim != 3 or traj.shape[-1] != 3:
        got = tuple(traj.shape) if isinstance(traj, torch.Tensor) else type(traj).__name__
        raise ValueError(f"load_mtbench_case: trajectories of {name} expected [T,N,3], got {got}")
    traj = traj.float()[:T]
    if traj.shape[0] != T:
        raise ValueError(f"load_mtbench_case: trajectories of {name} have {traj.shape[0]} frames, video has {T}")
    points = (traj[..., :2] * torch.tensor([W, H], dtype=torch.float32)).permute(1, 0, 2).contiguous()
    mask_dir = _need_dir(case_dir / "masks" / name, "load_mtbench_case")
    mask_files = sorted(f for f in mask_dir.iterdir() if f.suffix.lower() in IMAGE_EXT)
    if not mask_files:
        raise ValueError(f"load_mtbench_case: no mask images in {mask_dir}")
    masks = torch.from_numpy(np.stack([_read_image(f, grey=True) > 127 for f in mask_files]))
    prompts = _read_lines(case_dir / "prompts.txt")
    return MTBenchCase(name, video, masks, traj, points, traj[..., 2].T > 0.5, prompts,
                       _read_lines(case_dir / "eval_prompts.txt"), prompts[0] if prompts else "")


# ----------------------------------------------------------------------------- TAP-Vid, PointOdyssey
def _load_npz(path, what: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = _need_file(path, what)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise ValueError(f"{what}: cannot read {path} as .npz without pickle: {e}") from e
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{what}: {path} lacks keys {missing}; has {sorted(data)}")
    return data


def load_tapvid_npz(path, coords: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Load a TAP-Vid style .npz: video [T,H,W,3] (uint8 or float in [0,1]), points [N,T,2] (x, y),
    occluded [N,T] bool.

    Args:
        coords: "normalized" (x in [0,1] -> px = x*W, y*H as in the TAP-Vid pickles), "pixels", or
            "auto" (normalized iff every finite coordinate lies in [0,1]).
    Returns:
        video [T,H,W,3] float in [0,1], points [N,T,2] px, visible [N,T] bool (= ~occluded).
    """
    if coords not in ("auto", "normalized", "pixels"):
        raise ValueError(f"coords: expected 'auto', 'normalized' or 'pixels', got {coords!r}")
    d = _load_npz(path, "load_tapvid_npz", ("video", "points", "occluded"))
    video, pts, occ = d["video"], d["points"].astype(np.float32), d["occluded"]
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"load_tapvid_npz: video in {path} expected [T,H,W,3], got {video.shape}")
    T, H, W, _ = video.shape
    if pts.ndim != 3 or pts.shape[1:] != (T, 2) or occ.shape != pts.shape[:2]:
        raise ValueError(f"load_tapvid_npz: {path} expected points [N,{T},2] and occluded [N,{T}], "
                         f"got {pts.shape} and {occ.shape}")
    finite = pts[np.isfinite(pts)]
    if coords == "normalized" or (coords == "auto" and finite.size and finite.min() >= 0 and finite.max() <= 1):
        pts = pts * np.array([W, H], np.float32)
    v = torch.from_numpy(video.astype(np.float32) / (255.0 if video.dtype == np.uint8 else 1.0))
    return v, torch.from_numpy(pts), torch.from_numpy(~occ.astype(bool))


def load_pointodyssey_anno(path) -> tuple[torch.Tensor, torch.Tensor]:
    """Load PointOdyssey anno.npz: trajs_2d [T,N,2] px, visibs [T,N], optional valids [T,N].

    Returns:
        points [N,T,2] px, visible [N,T] bool (= visibs & valids when valids is present).
    """
    d = _load_npz(path, "load_pointodyssey_anno", ("trajs_2d", "visibs"))
    tr, vis = d["trajs_2d"].astype(np.float32), d["visibs"].astype(bool)
    if tr.ndim != 3 or tr.shape[-1] != 2 or vis.shape != tr.shape[:2]:
        raise ValueError(f"load_pointodyssey_anno: {path} expected trajs_2d [T,N,2] and visibs [T,N], "
                         f"got {tr.shape} and {vis.shape}")
    if "valids" in d:
        if d["valids"].shape != vis.shape:
            raise ValueError(f"load_pointodyssey_anno: valids in {path} expected {vis.shape}, got {d['valids'].shape}")
        vis = vis & d["valids"].astype(bool)
    return torch.from_numpy(tr.transpose(1, 0, 2).copy()), torch.from_numpy(vis.T.copy())
