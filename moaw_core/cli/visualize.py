"""Pictures of videos and tracks: tracks drawn on frames, labelled side-by-side panels, GIF / MP4 / PNG grids.

Frames in: float `[T, H, W, 3]` in [0, 1] (torch or numpy). Points: `[N, T, 2]` (x, y pixels), visible `[N, T]`.
Uses OpenCV for drawing and Pillow for GIFs (both present wherever ComfyUI runs).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def to_uint8(video, scale: int = 1) -> np.ndarray:
    """[T, H, W, 3] float in [0, 1] -> uint8 [T, H*scale, W*scale, 3] (nearest upscaling keeps pixels crisp)."""
    v = (np.clip(_np(video), 0, 1) * 255 + 0.5).astype(np.uint8)
    if scale > 1:
        v = v.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.ascontiguousarray(v)


def draw_tracks(video, points, visible=None, scale: int = 4, tail: int = 8) -> np.ndarray:
    """Draw each track's recent history on the frames. Returns uint8 `[T, H*scale, W*scale, 3]`."""
    frames = to_uint8(video, scale)
    pts = _np(points).astype(np.float64)
    vis = np.ones(pts.shape[:2], bool) if visible is None else _np(visible).astype(bool)
    n = pts.shape[0]
    hues = (np.arange(n) * 180 // max(n, 1)).astype(np.uint8)
    colours = cv2.cvtColor(np.stack([hues, np.full(n, 220, np.uint8), np.full(n, 255, np.uint8)], -1)[None],
                           cv2.COLOR_HSV2RGB)[0]
    for t in range(frames.shape[0]):
        img = frames[t]
        for i in range(n):
            c = tuple(int(v) for v in colours[i])
            t0 = max(0, t - tail)
            seg = [(pts[i, k] + 0.5) * scale for k in range(t0, t + 1) if vis[i, k]]
            for a, b in zip(seg[:-1], seg[1:]):
                cv2.line(img, tuple(int(v) for v in a), tuple(int(v) for v in b), c, 1, cv2.LINE_AA)
            if vis[i, t]:
                cv2.circle(img, tuple(int(v) for v in (pts[i, t] + 0.5) * scale), 2, c, -1, cv2.LINE_AA)
    return frames


def label(frames: np.ndarray, text: str) -> np.ndarray:
    """Add a caption bar above uint8 frames `[T, H, W, 3]`."""
    bar = np.full((frames.shape[0], 18, frames.shape[2], 3), 255, np.uint8)
    for t in range(frames.shape[0]):
        cv2.putText(bar[t], text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, frames], axis=1)


def side_by_side(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate uint8 videos `[T, H, W_i, 3]` left to right with white gaps."""
    t, h = panels[0].shape[:2]
    spacer = np.full((t, h, gap, 3), 255, np.uint8)
    out = []
    for k, p in enumerate(panels):
        out += [p] if k == 0 else [spacer, p]
    return np.concatenate(out, axis=2)


def save_gif(frames: np.ndarray, path, fps: float = 4.0) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def save_grid_png(rows: list[np.ndarray], path, max_frames: int = 8) -> Path:
    """Rows of uint8 videos `[T, H, W, 3]` -> one PNG: each row shows up to `max_frames` frames side by side."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        idx = np.linspace(0, r.shape[0] - 1, min(max_frames, r.shape[0])).round().astype(int)
        lines.append(np.concatenate([np.pad(r[i], ((2, 2), (2, 2), (0, 0)), constant_values=255) for i in idx], 1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(lines, 0), cv2.COLOR_RGB2BGR))
    return path
