"""Offline point trackers for evaluation: OpenCV pyramidal Lucas-Kanade, DIS flow chained into
first-frame-anchored tracks (dense and sparse), a zero-motion baseline, and CoTracker3 when the user
already has it in the torch.hub cache (this module never downloads anything).

Video is float32 [T, H, W, 3] RGB in [0, 1]; query points are [N, 2] (x, y) pixels at frame 0;
sparse outputs are points [N, T, 2] and visible [N, T]; flow is [H, W, 2] (dx, dy), frame t -> t+1.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def _check_video(video, name: str = "video") -> np.ndarray:
    if hasattr(video, "detach"):
        video = video.detach().cpu().numpy()
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 1:
        raise ValueError(f"{name}: expected [T, H, W, 3] float in [0, 1], got shape {tuple(v.shape)}")
    if not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"{name}: expected a float array in [0, 1], got dtype {v.dtype}")
    if v.size and (v.max() > 1.0 + 1e-3 or v.min() < -1e-3):
        raise ValueError(f"{name}: expected values in [0, 1], got range [{v.min():.3g}, {v.max():.3g}]")
    return v


def _check_points(points, name: str = "points") -> np.ndarray:
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    p = np.asarray(points, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{name}: expected [N, 2] (x, y) pixels, got shape {tuple(p.shape)}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return p


def _gray_u8(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] RGB float in [0, 1] (or [H, W]) -> [H, W] uint8 grey."""
    f = np.asarray(frame, dtype=np.float32)
    u8 = np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return u8 if u8.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(u8), cv2.COLOR_RGB2GRAY)


def _inside(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    return (xy[..., 0] >= 0) & (xy[..., 0] <= w - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= h - 1)


def track_points_lk(video, points, win_size: int = 21, max_level: int = 3,
                    fb_threshold: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Track points with OpenCV pyramidal Lucas-Kanade, frame to frame.

    Visibility: a step is kept when LK succeeds both ways, the forward-backward round trip lands
    within ``fb_threshold`` px of the start and the point is inside the frame. A lost point stays
    lost (no re-detection); its position is still propagated (held when LK fails outright).

    Args:
        video: [T, H, W, 3] float RGB in [0, 1]. points: [N, 2] (x, y) pixels in frame 0.
        win_size: LK window side (px). max_level: pyramid levels. fb_threshold: px.
    Returns:
        (points [N, T, 2] float32 (x, y), visible [N, T] bool).
    """
    v = _check_video(video)
    p0 = _check_points(points)
    T, H, W = v.shape[:3]
    n = p0.shape[0]
    out = np.zeros((n, T, 2), np.float32)
    vis = np.zeros((n, T), bool)
    out[:, 0], vis[:, 0] = p0, _inside(p0, H, W)
    if n == 0:
        return out, vis
    lk = dict(winSize=(win_size, win_size), maxLevel=max_level,
              criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    prev = _gray_u8(v[0])
    for t in range(1, T):
        cur = _gray_u8(v[t])
        a = out[:, t - 1].reshape(-1, 1, 2).copy()
        b, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, a, None, **lk)
        back, st_b, _ = cv2.calcOpticalFlowPyrLK(cur, prev, b, None, **lk)
        b, back = b.reshape(-1, 2), back.reshape(-1, 2)
        ok = (st.ravel() == 1) & (st_b.ravel() == 1) & np.isfinite(b).all(-1)
        fb_ok = np.linalg.norm(back - a.reshape(-1, 2), axis=-1) < fb_threshold
        out[:, t] = np.where(ok[:, None], b, out[:, t - 1])
        vis[:, t] = vis[:, t - 1] & ok & fb_ok & _inside(out[:, t], H, W)
        prev = cur
    return out, vis


def _dis(preset: str):
    key = str(preset).lower()
    if key not in _DIS_PRESETS:
        raise ValueError(f"preset: expected one of {sorted(_DIS_PRESETS)}, got {preset!r}")
    return cv2.DISOpticalFlow_create(_DIS_PRESETS[key])


def dis_flow(frame_a, frame_b, preset: str = "medium") -> np.ndarray:
    """Dense optical flow a -> b with OpenCV DIS (on uint8 grey).

    Args:
        frame_a, frame_b: [H, W, 3] RGB float in [0, 1] (or [H, W] grey). preset: ultrafast|fast|medium.
    Returns:
        [H, W, 2] float32 (dx, dy) pixels.
    """
    a, b = np.asarray(frame_a), np.asarray(frame_b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"frame_a, frame_b: expected equal [H, W, 3] shapes, got {a.shape}, {b.shape}")
    return _dis(preset).calc(_gray_u8(a), _gray_u8(b), None)


def pseudo_gt_flow(frame_a, frame_b, fb_tol: float = 1.0, agree_tol: float = 1.0,
                   photo_tol: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """A pseudo ground truth for real footage without labels: DIS (medium) flow a -> b, kept only where it is
    forward-backward consistent (|fw(x) + bw(x + fw(x))| < fb_tol px), agrees with Farneback's flow (an
    independent method) within agree_tol px, and explains the pixel (|grey b(x + fw(x)) - grey a(x)| < photo_tol,
    grey in [0, 1], both lightly blurred). Run it at a higher resolution than the method it judges (errors
    shrink with the downscale). Biased toward textured, unoccluded pixels that DIS gets right: good for
    choosing between trackers and for catching invented motion, not a replacement for real ground truth.

    Args: frame_a, frame_b: [H, W, 3] RGB float in [0, 1]. Returns: (flow [H, W, 2] float32 px, mask [H, W] bool).
    """
    a, b = np.asarray(frame_a), np.asarray(frame_b)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3 or min(a.shape[:2]) < 8:
        raise ValueError(f"frame_a, frame_b: expected equal [H, W, 3] shapes of at least 8 x 8, got {a.shape}, {b.shape}")
    if not (fb_tol > 0 and agree_tol > 0 and photo_tol > 0):
        raise ValueError(f"fb_tol/agree_tol/photo_tol: expected > 0, got {fb_tol}/{agree_tol}/{photo_tol}")
    ga, gb = _gray_u8(a), _gray_u8(b)
    fw, bw = _dis("medium").calc(ga, gb, None), _dis("medium").calc(gb, ga, None)
    h, w = ga.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(bw, gx + fw[..., 0], gy + fw[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (gx + fw[..., 0] >= 0) & (gx + fw[..., 0] <= w - 1) & (gy + fw[..., 1] >= 0) & (gy + fw[..., 1] <= h - 1)
    farneback = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 21, 3, 7, 1.5, 0)
    blur = lambda g: cv2.GaussianBlur(g.astype(np.float32) / 255.0, (0, 0), 1.0)  # noqa: E731
    warped = cv2.remap(blur(gb), gx + fw[..., 0], gy + fw[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = inside & (np.linalg.norm(fw + back, axis=-1) < fb_tol) & (np.linalg.norm(fw - farneback, axis=-1) < agree_tol)
    mask &= np.abs(warped - blur(ga)) < photo_tol
    return fw.astype(np.float32), mask


def _video_flows(v: np.ndarray, preset: str, backward: bool):
    dis = _dis(preset)
    grays = [_gray_u8(f) for f in v]
    fw = [dis.calc(grays[t], grays[t + 1], None) for t in range(len(grays) - 1)]
    bw = [dis.calc(grays[t + 1], grays[t], None) for t in range(len(grays) - 1)] if backward else None
    return fw, bw


def video_flows(video, preset: str = "medium", backward: bool = True):
    """DIS flow between consecutive frames of a video.

    Args:
        video: [T, H, W, 3] float RGB in [0, 1] (T >= 2). preset: DIS preset. backward: also t+1 -> t.
    Returns:
        (forward [T-1, H, W, 2] float32 (dx, dy) frame t -> t+1, backward [T-1, H, W, 2] or None).
    """
    v = _check_video(video)
    if v.shape[0] < 2:
        raise ValueError(f"video: expected at least 2 frames for flow, got {v.shape[0]}")
    fw, bw = _video_flows(v, preset, backward)
    return np.stack(fw), (np.stack(bw) if bw is not None else None)


def chain_flows(forward, points, backward=None) -> tuple[np.ndarray, np.ndarray]:
    """Chain precomputed flows into tracks from frame-0 points (as :func:`track_points_dis`).

    Args:
        forward: [T-1, H, W, 2] flows t -> t+1. points: [N, 2] (x, y) pixels in frame 0.
        backward: optional [T-1, H, W, 2] flows t+1 -> t for the forward-backward visibility check.
    Returns:
        (points [N, T, 2] float32, visible [N, T] bool; once inconsistent or outside, stays invisible).
    """
    fw = np.asarray(forward, dtype=np.float32)
    if fw.ndim != 4 or fw.shape[-1] != 2:
        raise ValueError(f"forward: expected [T-1, H, W, 2] flows, got shape {fw.shape}")
    if backward is not None and np.shape(backward) != fw.shape:
        raise ValueError(f"backward: expected shape {fw.shape} like forward, got {np.shape(backward)}")
    p0 = _check_points(points)
    xy = _chain(list(fw), p0)
    bw = None if backward is None else list(np.asarray(backward, dtype=np.float32))
    vis = _chain_visibility(xy, bw, fw.shape[1], fw.shape[2])
    return np.ascontiguousarray(xy.transpose(1, 0, 2)), np.ascontiguousarray(vis.T)


def _sample(flow: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear sample of flow [H, W, 2] at xy [K, 2] -> [K, 2] (border replicated)."""
    mx = np.ascontiguousarray(xy[:, 0:1], dtype=np.float32)
    my = np.ascontiguousarray(xy[:, 1:2], dtype=np.float32)
    s = cv2.remap(flow, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return s.reshape(-1, 2)


def _chain(fw, start: np.ndarray) -> np.ndarray:
    """Chain flows [T-1] x [H, W, 2] from start [K, 2] -> xy [T, K, 2]."""
    xy = np.empty((len(fw) + 1,) + start.shape, np.float32)
    xy[0] = start
    for t, f in enumerate(fw):
        xy[t + 1] = xy[t] + _sample(f, xy[t])
    return xy


def _chain_visibility(xy: np.ndarray, bw, h: int, w: int) -> np.ndarray:
    """Sticky visibility [T, K] for chained tracks xy [T, K, 2].

    A step is consistent when the backward flow at the new position returns to the old one
    (Sundaram et al. 2010: |f + b|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5) and the point is in the frame.
    """
    vis = np.empty(xy.shape[:2], bool)
    vis[0] = _inside(xy[0], h, w)
    for t in range(xy.shape[0] - 1):
        ok = _inside(xy[t + 1], h, w)
        if bw is not None:
            f = xy[t + 1] - xy[t]
            b = _sample(bw[t], xy[t + 1])
            err = np.sum((f + b) ** 2, -1)
            ok &= err <= 0.01 * (np.sum(f * f, -1) + np.sum(b * b, -1)) + 0.5
        vis[t + 1] = vis[t] & ok
    return vis


def track_points_dis(video, points, preset: str = "medium",
                     fb_check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Track points by chaining DIS flow (bilinearly sampled at the current position).

    Args:
        video: [T, H, W, 3] float RGB in [0, 1]. points: [N, 2] (x, y) pixels in frame 0.
        preset: DIS preset. fb_check: forward-backward consistency for visibility (doubles the cost).
    Returns:
        (points [N, T, 2] float32, visible [N, T] bool; once inconsistent or outside, stays invisible).
    """
    v = _check_video(video)
    p0 = _check_points(points)
    fw, bw = _video_flows(v, preset, fb_check)
    xy = _chain(fw, p0)
    vis = _chain_visibility(xy, bw, v.shape[1], v.shape[2])
    return np.ascontiguousarray(xy.transpose(1, 0, 2)), np.ascontiguousarray(vis.T)


def track_dense_dis(video, preset: str = "medium", fb_check: bool = True):
    """Dense first-frame-anchored tracks from DIS flow, chained by ``moaw_core.tracking.tracks.flows_to_tracks``
    (same forward-backward rule as :func:`track_points_dis`).

    Args:
        video: [T, H, W, 3] float RGB in [0, 1]. preset: DIS preset. fb_check: use backward flow.
    Returns:
        ``moaw_core.tracking.tracks.DenseTracks`` (torch, CPU): xy [T, H, W, 2] (x, y) with xy[0, i, j] == (j, i),
        visible [T, H, W] bool, depth None.
    """
    import torch

    from moaw_core.tracking.tracks import flows_to_tracks

    v = _check_video(video)
    H, W = v.shape[1:3]
    fw, bw = _video_flows(v, preset, fb_check)

    def stack(fl):
        return torch.from_numpy(np.stack(fl) if fl else np.zeros((0, H, W, 2), np.float32))

    return flows_to_tracks(stack(fw), stack(bw) if bw is not None else None)


def zero_motion_points(points, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: every point stays where it is.

    Args:
        points: [N, 2] (x, y) pixels. T: number of frames (>= 1).
    Returns:
        (points [N, T, 2] float32, visible [N, T] all True).
    """
    p = _check_points(points)
    if int(T) < 1:
        raise ValueError(f"T: expected >= 1, got {T}")
    return np.repeat(p[:, None], int(T), axis=1), np.ones((p.shape[0], int(T)), bool)


def _cotracker_hub_dir() -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "facebookresearch_co-tracker_main")


def track_points_cotracker(video, points, model: str = "cotracker3_offline", device: str = "cpu"):
    """Track points with CoTracker3 from the local torch.hub cache (never downloads).

    Needs ``<torch hub dir>/facebookresearch_co-tracker_main`` (the hub repo) and its checkpoint in
    ``<torch hub dir>/checkpoints`` (e.g. after one online ``torch.hub.load`` by the user).

    Args:
        video: [T, H, W, 3] float RGB in [0, 1]. points: [N, 2] (x, y) pixels in frame 0.
        model: hub entry point (cotracker3_offline | cotracker3_online). device: torch device.
    Returns:
        (points [N, T, 2] float32, visible [N, T] bool).
    Raises:
        RuntimeError: when the repository or checkpoint is not in the local cache.
    """
    import torch

    v = _check_video(video)
    p0 = _check_points(points)
    repo = _cotracker_hub_dir()
    ckpt_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    has_ckpt = os.path.isdir(ckpt_dir) and any(f.endswith(".pth") for f in os.listdir(ckpt_dir))
    if not os.path.isfile(os.path.join(repo, "hubconf.py")) or not has_ckpt:
        raise RuntimeError(
            f"CoTracker3 is not in the local torch.hub cache ({repo} and a checkpoint in {ckpt_dir}); "
            "install it once with torch.hub.load('facebookresearch/co-tracker', 'cotracker3_offline') "
            "or use track_points_lk / track_points_dis")
    net = torch.hub.load(repo, model, source="local").to(device).eval()
    vid = torch.from_numpy(np.ascontiguousarray(v)).permute(0, 3, 1, 2)[None].float().to(device) * 255.0
    q = torch.from_numpy(p0)
    queries = torch.cat([torch.zeros(len(q), 1), q], dim=1)[None].to(device)  # (t, x, y)
    with torch.no_grad():
        tracks, visible = net(vid, queries=queries)
    tr = tracks[0].permute(1, 0, 2).float().cpu().numpy()
    vi = visible[0].permute(1, 0).cpu().numpy() > 0.5
    return tr.astype(np.float32), vi
