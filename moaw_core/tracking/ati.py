"""Bridge to core trajectory conditioning: point tracks of a source video -> the `tracks` JSON of ComfyUI's
`WanTrackToVideo` (Wan ATI), so ATI weights follow a source video's motion with no tracker training.

WanTrackToVideo's format (comfy_extras/nodes_wan.py, ComfyUI 0.3.75): a JSON list of tracks, each a list of
{"x": px, "y": py} in the pixels of the generated frame (width x height). Every track is padded or cut to
121 samples (ATI's 24 fps clock); `process_tracks` then picks, for output frame f = 1..F (F = length - 1),
sample j(f) = 1 + (1 + a (f - 1)) // b with a = 120 / gcd(120, F), b = F / gcd(120, F); frame 0 reads
sample 0. Coordinates are continuous with pixel i covering [i, i + 1) (they go through grid_sample with
align_corners=False); Moaw's tracks put pixel centres on integers, so +0.5 is added. The start image is
centre-cropped to the output aspect and resized (comfy.utils.common_upscale, crop="center"); the same crop
is applied to the tracks. The JSON has no per-sample visibility (every given sample counts as visible), so
tracks that are lost or leave the crop anywhere are dropped.

`to_ati_tracks` is exact: after `process_tracks`, output frame f holds the source position at source time
f * (T_src - 1) / F (linear between source frames; frame for frame when T_src == length).
"""
from __future__ import annotations

import json
import math

import numpy as np

ATI_SAMPLES = 121  # WanTrackToVideo pads / truncates every track to this many samples
MAX_LENGTH = 120   # at length 121 its resampling yields one frame short (process_tracks' [1::a] with a = 1)
METHODS = ("lucas_kanade", "dis")


def ati_sample_index(length: int) -> np.ndarray:
    """Index of the 121-sample track that WanTrackToVideo reads for each output frame 0..length-1.

    Returns:
        int array [length], strictly increasing (lengths 2..120).
    """
    if not isinstance(length, (int, np.integer)) or not 2 <= length <= MAX_LENGTH:
        raise ValueError(f"length: expected an int in [2, {MAX_LENGTH}] (WanTrackToVideo resamples {ATI_SAMPLES} "
                         f"track samples to length - 1 frames), got {length!r}")
    frames = length - 1
    g = math.gcd(120, frames)
    a, b = 120 // g, frames // g
    f = np.arange(1, frames + 1)
    return np.concatenate([[0], 1 + (1 + a * (f - 1)) // b])


def centre_crop_map(src_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, sx, sy): continuous source coordinates -> output = ((x - x0) * sx, (y - y0) * sy), the crop and
    scale that comfy.utils.common_upscale(..., crop="center") applies to the start image."""
    (ws, hs), (w, h) = src_size, out_size
    if min(ws, hs, w, h) < 1:
        raise ValueError(f"sizes: expected positive (width, height), got source {src_size}, output {out_size}")
    old, new = ws / hs, w / h
    x0 = round((ws - ws * (new / old)) / 2) if old > new else 0
    y0 = round((hs - hs * (old / new)) / 2) if old < new else 0
    return float(x0), float(y0), w / (ws - 2 * x0), h / (hs - 2 * y0)


def to_ati_tracks(points, visible, src_size: tuple[int, int], out_size: tuple[int, int],
                  length: int) -> list[list[dict]]:
    """Sparse tracks of a source video -> WanTrackToVideo tracks (JSON-ready lists of {"x", "y"}).

    Args:
        points: [N, T, 2] (x, y) source pixels (pixel centres on integers), T >= 2 source frames.
        visible: [N, T] bool. src_size: source (width, height). out_size: WanTrackToVideo (width, height).
        length: WanTrackToVideo's `length` (output frames, 2..120; it needs 4k + 1 to run).
    Returns:
        The kept tracks (visible in every frame and inside the crop throughout), each 121 samples.
    """
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(visible)
    if p.ndim != 3 or p.shape[-1] != 2 or p.shape[1] < 2:
        raise ValueError(f"points: expected [N, T, 2] with T >= 2, got shape {p.shape}")
    if v.shape != p.shape[:2]:
        raise ValueError(f"visible: expected shape {p.shape[:2]} (matching points), got {v.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points: expected finite positions, got NaN or inf")
    j_of_f = ati_sample_index(length)
    x0, y0, sx, sy = centre_crop_map(src_size, out_size)
    out_xy = np.stack([(p[..., 0] + 0.5 - x0) * sx, (p[..., 1] + 0.5 - y0) * sy], -1)  # [N, T, 2]
    w, h = out_size
    inside = (out_xy[..., 0] >= 0) & (out_xy[..., 0] <= w) & (out_xy[..., 1] >= 0) & (out_xy[..., 1] <= h)
    keep = np.flatnonzero((v.astype(bool) & inside).all(axis=1))
    t_src = np.arange(length) * (p.shape[1] - 1) / (length - 1)       # source time of each output frame
    t_of_j = np.interp(np.arange(ATI_SAMPLES), j_of_f, t_src)         # source time of every ATI sample
    src_t = np.arange(p.shape[1])
    tracks = []
    for n in keep:
        xs = np.interp(t_of_j, src_t, out_xy[n, :, 0])
        ys = np.interp(t_of_j, src_t, out_xy[n, :, 1])
        tracks.append([{"x": round(float(x), 4), "y": round(float(y), 4)} for x, y in zip(xs, ys)])
    return tracks


def track_video(video, grid: int, method: str = "lucas_kanade") -> tuple[np.ndarray, np.ndarray]:
    """Track a grid x grid lattice of frame-0 points through a video with the pack's OpenCV trackers.

    Args:
        video: [T, H, W, 3] float in [0, 1]. grid: points per side (>= 1). method: one of METHODS.
    Returns:
        points [grid^2, T, 2] px and visible [grid^2, T] bool.
    """
    from .cv_trackers import track_points_dis, track_points_lk
    from .tracks import grid_points

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid: expected an int >= 1, got {grid!r}")
    v = video.detach().cpu().numpy() if hasattr(video, "detach") else np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 2:
        raise ValueError(f"video: expected [T, H, W, 3] with T >= 2 frames, got shape {tuple(v.shape)}")
    query = grid_points(v.shape[1], v.shape[2], grid).numpy()
    fn = track_points_lk if method == "lucas_kanade" else track_points_dis
    return fn(v.astype(np.float32), query)


def video_to_ati_json(video, out_size: tuple[int, int], length: int, grid: int = 6,
                      method: str = "lucas_kanade") -> tuple[str, int]:
    """Track a source video and format its tracks for WanTrackToVideo. Returns (JSON string, tracks kept)."""
    pts, vis = track_video(video, grid, method)
    tracks = to_ati_tracks(pts, vis, (int(video.shape[2]), int(video.shape[1])), out_size, length)
    if not tracks:
        raise ValueError(f"video: none of the {grid * grid} tracked points stayed visible in every frame; "
                         "try a denser grid, the 'dis' method or a shorter clip")
    return json.dumps(tracks, separators=(",", ":")), len(tracks)
