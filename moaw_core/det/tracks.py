"""Source tracks for DeT and its dense tracking loss.

Tracks are sparse point tracks in pixels, `points [N, T, 2]` (x, y) and `visible [N, T]` (TAP-Vid order), on
the source video. The paper uses CoTracker3 with 100 points sampled in the first-frame foreground mask and
visibility > 0.9; here the tracker is a choice: OpenCV Lucas-Kanade ("lk") or DIS ("dis") work offline,
"cotracker" when the user has it in the torch.hub cache, or any callable (the pack's own tracker).

The loss (DeT §3.3): sample the predicted clean latent at each track's position (nearest latent pixel, pixel
frames subsampled to latent frames: latent frame k <-> pixel frame k * temporal_stride), and penalise the squared
change between consecutive latent frames, weighted by the later frame's visibility.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TRACKERS = ("lk", "dis", "cotracker")


def query_points(height: int, width: int, n: int = 100, mask=None, seed: int = 0) -> torch.Tensor:
    """`n` query points (x, y) in pixels: drawn (seeded) inside `mask` [H, W] bool when given, else an even grid
    of about n points. Returns [N, 2] float32."""
    from moaw_core.tracking.tracks import grid_points

    if n < 1:
        raise ValueError(f"n: expected at least 1 query point, got {n}")
    if mask is None:
        side = max(1, int(round(n ** 0.5)))
        return grid_points(height, width, side)
    m = torch.as_tensor(np.asarray(mask)).bool()
    if tuple(m.shape) != (height, width):
        raise ValueError(f"mask: expected [{height}, {width}] (the first frame's size), got {tuple(m.shape)}")
    ys, xs = torch.nonzero(m, as_tuple=True)
    if ys.numel() == 0:
        raise ValueError("mask: the first-frame foreground mask is empty; give a mask with foreground or None")
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randperm(ys.numel(), generator=g)[:n]
    return torch.stack([xs[pick], ys[pick]], dim=-1).float()


def source_tracks(video, method: str = "lk", n_points: int = 100, mask=None, seed: int = 0, tracker=None):
    """Track `n_points` query points through the source video.

    Args:
        video: [T, H, W, 3] float in [0, 1]. method: "lk" | "dis" | "cotracker" (ignored when `tracker` given).
        mask: optional first-frame foreground mask [H, W]. tracker: optional callable
            (video, points [N, 2]) -> (points [N, T, 2], visible [N, T]), e.g. the pack's own tracker.
    Returns:
        (points [N, T, 2] float32 tensor, visible [N, T] bool tensor).
    """
    from moaw_core.tracking import cv_trackers as cv

    v = torch.as_tensor(np.asarray(video.detach().cpu() if hasattr(video, "detach") else video), dtype=torch.float32)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 2:
        raise ValueError(f"video: expected [T, H, W, 3] with T >= 2 frames, got {tuple(v.shape)}")
    q = query_points(v.shape[1], v.shape[2], n_points, mask, seed)
    if tracker is None:
        fns = {"lk": cv.track_points_lk, "dis": cv.track_points_dis, "cotracker": cv.track_points_cotracker}
        if method not in fns:
            raise ValueError(f"method: expected one of {TRACKERS} (or pass tracker=), got {method!r}")
        tracker = fns[method]
    pts, vis = tracker(v, q)
    return torch.as_tensor(np.asarray(pts), dtype=torch.float32), torch.as_tensor(np.asarray(vis)).bool()


@dataclass(frozen=True)
class LatentTracks:
    """Tracks on the latent grid: frame index per latent frame, nearest latent pixel, visibility weight.

    frames [T'] long; y, x [N, T'] long; weight [N, T'] float (1 visible, 0 not)."""

    frames: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    weight: torch.Tensor


def latent_tracks(points, visible, video_size, latent_grid, temporal_stride: int = 1) -> LatentTracks:
    """Map pixel tracks to latent positions.

    Args:
        points [N, T, 2] (x, y) px; visible [N, T] bool; video_size (H, W) in pixels; latent_grid (T', h, w);
        temporal_stride: pixel frames per latent frame (1 for the demo codec, 4 for Wan's VAE, whose T' latent
            frames hold 4 (T' - 1) + 1 pixel frames). Latent frame k uses pixel frame k * temporal_stride.
    Raises ValueError when the frame counts do not fit that layout.
    """
    points = torch.as_tensor(points, dtype=torch.float32)
    visible = torch.as_tensor(visible).bool()
    if points.ndim != 3 or points.shape[-1] != 2 or tuple(visible.shape) != tuple(points.shape[:2]):
        raise ValueError(f"tracks: expected points [N, T, 2] and visible [N, T], got {tuple(points.shape)} and "
                         f"{tuple(visible.shape)}")
    t_lat, h, w = (int(v) for v in latent_grid)
    n_pix = points.shape[1]
    s = int(temporal_stride)
    if s < 1 or not ((t_lat - 1) * s + 1 <= n_pix <= t_lat * s):
        raise ValueError(f"tracks: {n_pix} tracked frames do not fit {t_lat} latent frames at temporal stride {s} "
                         f"(expected {(t_lat - 1) * s + 1}..{t_lat * s} frames); track the same frames as the "
                         f"encoded source video")
    frames = torch.arange(t_lat) * s
    H, W = video_size
    p = points[:, frames]
    x = (p[..., 0] * w / W).floor().long().clamp(0, w - 1)  # nearest latent pixel (cell containing the point)
    y = (p[..., 1] * h / H).floor().long().clamp(0, h - 1)
    return LatentTracks(torch.arange(t_lat), y, x, visible[:, frames].float())


def tracking_loss(x0_pred: torch.Tensor, tracks: LatentTracks) -> torch.Tensor:
    """Mean over visible steps of the squared change of the predicted latent along each track.

    Args:
        x0_pred: [B, C, T', h, w] predicted clean latent. tracks: LatentTracks for this latent grid.
    Returns:
        scalar: sum_{n,k>=1} vis[n,k] * mean_c (z[c,k,y,x] - z[c,k-1,y',x'])^2 / sum vis[n,k>=1] (0 when none).
    """
    if x0_pred.ndim != 5 or x0_pred.shape[2] != tracks.frames.numel():
        raise ValueError(f"tracking_loss: x0_pred {tuple(x0_pred.shape)} is not [B, C, {tracks.frames.numel()}, h, w]")
    dev = x0_pred.device
    t = tracks.frames.to(dev)[None].expand_as(tracks.y)
    feats = x0_pred[:, :, t, tracks.y.to(dev), tracks.x.to(dev)].float()   # [B, C, N, T']
    sq = (feats[..., 1:] - feats[..., :-1]).pow(2).mean(1)                # [B, N, T'-1]
    w = tracks.weight[:, 1:].to(dev)
    return (sq * w).sum(dim=(1, 2)).mean() / w.sum().clamp_min(1.0)


def infer_temporal_stride(pixel_frames: int, latent_frames: int, max_stride: int = 8) -> int:
    """Pixel frames per latent frame: the s with (T' - 1) s + 1 <= T <= T' s (1 for T == T'; 4 for Wan's VAE)."""
    if latent_frames < 2:
        raise ValueError(f"tracks: the tracking loss needs at least 2 latent frames, the source has {latent_frames}")
    for s in range(1, max_stride + 1):
        if (latent_frames - 1) * s + 1 <= pixel_frames <= latent_frames * s:
            return s
    raise ValueError(f"tracks: a source video of {pixel_frames} frames cannot be the one encoded into "
                     f"{latent_frames} latent frames (no temporal stride 1..{max_stride} fits); pass the same "
                     f"frames that were encoded")


def tracks_for_latent(video, latent_shape, method: str = "lk", n_points: int = 100, mask=None, seed: int = 0,
                      tracker=None) -> LatentTracks:
    """Track the source `video` [T, H, W, 3] and map the tracks onto a latent of `latent_shape` [B, C, T', h, w]."""
    shape = tuple(int(v) for v in latent_shape)
    if len(shape) != 5:
        raise ValueError(f"latent_shape: expected [B, C, T, H, W], got {shape}")
    v = torch.as_tensor(np.asarray(video.detach().cpu() if hasattr(video, "detach") else video), dtype=torch.float32)
    if v.ndim != 4 or v.shape[-1] != 3:
        raise ValueError(f"video: expected [T, H, W, 3] frames in [0, 1], got {tuple(v.shape)}")
    stride = infer_temporal_stride(v.shape[0], shape[2])
    points, visible = source_tracks(v, method, n_points, mask, seed, tracker)
    return latent_tracks(points, visible, (v.shape[1], v.shape[2]), shape[2:], stride)
