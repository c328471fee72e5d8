"""Tracks over clips of any length and resolution from a tracker with a fixed window (the Moaw tracker is
trained on 8 frames of 64 x 64).

- `window_starts`: anchors of overlapping windows covering T frames.
- `chain_windows`: composes per-window first-frame-anchored tracks into tracks anchored at frame 0 of the
  clip (re-anchoring): a frame-0 point at position p in the window's anchor frame a moves to
  p + disp_w[k](p) in frame a + k (the window's displacement field sampled bilinearly at p). Its visibility
  is the window's (bilinear vote >= 0.5) and requires the point to be visible at the anchor. A later
  window (a more recent anchor) overrides an earlier one only for points visible at its anchor, so with
  stride < window - 1 a point hidden at one anchor is still carried by the previous window.
- `resize_tracks`: tracks computed at a working resolution, upsampled to the video's (displacements
  bilinearly interpolated and rescaled, visibility by bilinear vote, depth interpolated).
- `track_long`: all three around any batched window predictor `predict_windows(videos) -> [DenseTracks]`
  (one tracker call per `batch` windows).
- `smooth_tracks`: a box filter over each frame's displacement field (the base pass's windows are smoothed
  before chaining: their fine detail is mostly noise, which the refinement then measures properly).
- `refine_tracks` (+ `refine_levels`, `refine_frames`, `tile_starts`): coarse-to-fine refinement of such tracks with
  the same predictor at a higher resolution: frames warped to frame 0 by the tracks, the residual tracked on tiles
  of the predictor's training size, composed (docs/TRAINING.md, "Refinement at the video's resolution").

Displacement range: inside one window the Moaw track encoding saturates at `max_disp` (24 px for the
shipped tracker at its 64 px working size, i.e. 37 % of the frame), so the fastest motion one window can
report is about max_disp / (window - 1) = 3.4 px per frame at the working size (6.9 px/frame at 128 px).
Longer total displacements come from chaining (no limit). `track_long(max_disp=...)` checks every window:
one where more than `saturated` of the points move further than 0.8 max_disp by its last frame (the encoding
is near its limit) is run again as two windows over half as many frames each (each padded to the tracker's
`window` frames by repeating its last frame, so the tracker always sees its training length), down to
2 real frames, i.e. a per-frame limit of up to max_disp px (24 px/frame at 64 px, 150 px/frame at 400 px).
It is off by default (`MoawTracker.predict_tracks_long(split_saturated=False)`): for the shipped tracker the
extra chaining and the padded windows cost more than the saturation (validation 3-D scenes at 2x, 4x and 6x
the training motion: delta_avg 0.642 -> 0.641, 0.533 -> 0.494, 0.415 -> 0.396; docs/TRAINING.md).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from moaw_core.tracking.tracks import DenseTracks, pixel_grid


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Anchors a_0 = 0 < a_1 < ... of windows [a, a + window) covering [0, num_frames); each anchor lies
    inside an earlier window (so its positions are known); the last window ends at num_frames."""
    if window < 2 or not 1 <= stride <= window - 1:
        raise ValueError(f"window/stride: expected window >= 2 and 1 <= stride <= window - 1, got {window}/{stride}")
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    if num_frames <= window:
        return [0]
    starts = [0]
    while starts[-1] + window < num_frames:
        starts.append(min(starts[-1] + stride, num_frames - window))
    return starts


def _sample(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """field [K,H,W,C] sampled bilinearly at xy [H',W',2] px (border padding) -> [K,H',W',C]."""
    H, W = field.shape[1:3]
    g = torch.stack([xy[..., 0] * (2.0 / max(W - 1, 1)) - 1, xy[..., 1] * (2.0 / max(H - 1, 1)) - 1], -1)
    out = F.grid_sample(field.permute(0, 3, 1, 2).float(), g[None].expand(len(field), *g.shape).float(),
                        mode="bilinear", padding_mode="border", align_corners=True)
    return out.permute(0, 2, 3, 1)


def chain_windows(windows: list[tuple[int, DenseTracks]], num_frames: int) -> DenseTracks:
    """Compose window tracks into clip tracks anchored at frame 0.

    Args:
        windows: (anchor frame a, DenseTracks of frames [a, a + L) anchored at frame a), in increasing a;
            the first anchor is 0 and every later anchor lies inside an earlier window. All windows share H, W.
        num_frames: T of the clip (every frame must be covered).
    Returns:
        DenseTracks [T,H,W] (depth when every window has depth).
    """
    if not windows or windows[0][0] != 0:
        raise ValueError(f"windows: expected a first window anchored at frame 0, got anchors {[a for a, _ in windows]}")
    H, W = windows[0][1].height, windows[0][1].width
    xy = torch.zeros(num_frames, H, W, 2)
    vis = torch.zeros(num_frames, H, W, dtype=torch.bool)
    has_depth = all(w.depth is not None for _, w in windows)
    depth = torch.zeros(num_frames, H, W) if has_depth else None
    filled = torch.zeros(num_frames, dtype=torch.bool)
    grid = pixel_grid(H, W)
    for a, win in windows:
        L = win.num_frames
        if (win.height, win.width) != (H, W) or a + L > num_frames or (a > 0 and not bool(filled[a])):
            raise ValueError(f"windows: window at {a} ({L} frames, {win.height}x{win.width}) does not fit a "
                             f"{num_frames}-frame {H}x{W} clip whose frames {filled.nonzero().flatten().tolist()} "
                             "are known")
        if a == 0:
            p, anchor_vis = grid, torch.ones(H, W, dtype=torch.bool)
        else:
            p, anchor_vis = xy[a], vis[a]
        fields = [win.displacement()[1:], win.visible[1:, ..., None].float()]
        if has_depth:
            fields.append(win.depth[1:, ..., None].float())
        s = _sample(torch.cat(fields, -1), p)  # [L-1,H,W,C]
        for k in range(1, L):
            t = a + k
            take = anchor_vis | ~filled[t]  # a point hidden at this anchor keeps an earlier window's estimate
            xy[t] = torch.where(take[..., None], p + s[k - 1, ..., :2], xy[t])
            vis[t] = torch.where(take, anchor_vis & (s[k - 1, ..., 2] >= 0.5), vis[t])
            if has_depth:
                depth[t] = torch.where(take, s[k - 1, ..., 3], depth[t])
            filled[t] = True
        if a == 0:
            depth0 = win.depth[0].float() if has_depth else None
    if not bool(filled[1:].all()):
        raise ValueError(f"windows: frames {(~filled[1:]).nonzero().flatten().add(1).tolist()} are not covered")
    xy[0], vis[0] = grid, True
    if has_depth:
        depth[0] = depth0
    return DenseTracks(xy, vis, depth)


def resize_tracks(tracks: DenseTracks, height: int, width: int) -> DenseTracks:
    """Tracks at h x w -> height x width (pixel centres aligned: x_full = (x + 0.5) * width / w - 0.5)."""
    h, w = tracks.height, tracks.width
    if (h, w) == (height, width):
        return tracks
    scale = torch.tensor([width / w, height / h])
    chans = [tracks.displacement().float(), tracks.visible[..., None].float()]
    if tracks.depth is not None:
        chans.append(tracks.depth[..., None].float())
    up = F.interpolate(torch.cat(chans, -1).permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                       align_corners=False).permute(0, 2, 3, 1)
    xy = pixel_grid(height, width)[None] + up[..., :2] * scale
    vis = up[..., 2] >= 0.5
    vis[0] = True
    return DenseTracks(xy, vis, up[..., 3] if tracks.depth is not None else None)


def _box_mean(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Means of `size` consecutive entries along `dim` (valid windows; the input is already padded), by differences
    of a running sum in float64 (exact enough at any size, cheaper than a pooling kernel)."""
    c = F.pad(x.double().cumsum(dim).movedim(dim, -1), (1, 0)).movedim(-1, dim)
    n = c.shape[dim]
    return ((c.narrow(dim, size, n - size) - c.narrow(dim, 0, n - size)) / size).to(x.dtype)


def smooth_tracks(tracks: DenseTracks, size: int) -> DenseTracks:
    """Each frame's displacement field box-filtered over `size` x `size` pixels (edges replicated); frame 0,
    visibility and depth unchanged. size 0 or 1: the tracks as they are.

    The Moaw tracker's fields are noisy at the scale of its codec's 4-px patches and of its 8-px tokens (and,
    on real footage, drift where nothing moves); the refinement measures what the smoothing takes away at the
    video's resolution. Validation (docs/TRAINING.md): base windows smoothed over 11 px at 64 px, then refined,
    0.839 -> 0.869 delta_avg on 3-D scenes; the refinement's own measurements are best left unsmoothed."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"size: expected an integer >= 0 (box width in px), got {size!r}")
    if not isinstance(tracks, DenseTracks):
        raise TypeError(f"tracks: expected DenseTracks, got {type(tracks).__name__}")
    if size <= 1:
        return tracks
    d = tracks.displacement().float().permute(0, 3, 1, 2)
    lo, hi = (size - 1) // 2, size // 2
    if min(d.shape[-2:]) > hi:
        d = F.pad(d, (lo, hi, lo, hi), mode="replicate")
    else:  # a field smaller than the box: replicate padding needs pad < size, so pad in steps
        for _ in range(hi):
            d = F.pad(d, (1 if _ < lo else 0, 1, 1 if _ < lo else 0, 1), mode="replicate")
    d = _box_mean(_box_mean(d, size, -2), size, -1).permute(0, 2, 3, 1)  # separable running sums: O(1) per pixel
    d[0] = 0
    xy = pixel_grid(tracks.height, tracks.width)[None] + d
    return DenseTracks(xy, tracks.visible, tracks.depth)


def work_size(height: int, width: int, work_height: int | None, multiple: int = 8) -> tuple[int, int]:
    """(h, w) for a work height (width by aspect ratio), both multiples of `multiple`; None = the video's own."""
    if work_height is None:
        h, w = height, width
    else:
        h, w = work_height, round(width * work_height / height)
    h, w = max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple)
    return h, w


def _saturated(tracks: DenseTracks, max_disp: float, fraction: float) -> bool:
    """True when more than `fraction` of the points move further than 0.8 max_disp by the last frame."""
    mag = torch.linalg.vector_norm(tracks.displacement()[-1].float(), dim=-1)
    return float((mag > 0.8 * max_disp).float().mean()) > fraction


def _padded(small: torch.Tensor, a: int, k: int, length: int) -> torch.Tensor:
    """Frames [a, a + k) of small [T,h,w,3], padded to `length` frames by repeating the last."""
    clip = small[a:a + k]
    return torch.cat([clip, clip[-1:].expand(length - k, *clip.shape[1:])]) if k < length else clip


def _predict_spans(predict_windows, small: torch.Tensor, spans: list[tuple[int, int]], length: int,
                   batch: int) -> list[DenseTracks]:
    """Tracks of each (anchor, k frames) span, run as `length`-frame windows (padded), `batch` per call."""
    out: list[DenseTracks] = []
    for i in range(0, len(spans), batch):
        chunk = torch.stack([_padded(small, a, k, length) for a, k in spans[i:i + batch]])
        res = list(predict_windows(chunk))
        if len(res) != len(chunk):
            raise ValueError(f"predict_windows: expected {len(chunk)} DenseTracks, got {len(res)}")
        out += [DenseTracks(r.xy[:k], r.visible[:k], None if r.depth is None else r.depth[:k])
                for r, (_, k) in zip(res, spans[i:i + batch])]
    return out


def track_long(predict_windows: Callable[[torch.Tensor], list[DenseTracks]], video: torch.Tensor, window: int = 8,
               stride: int | None = None, work_height: int | None = 64, multiple: int = 8, batch: int = 8,
               max_disp: float | None = None, saturated: float = 0.02, short_last: bool = False) -> DenseTracks:
    """First-frame-anchored tracks of a video of any length and size.

    Args:
        predict_windows: videos [N,L,h,w,3] -> N DenseTracks [L,h,w] (e.g. a MoawTracker's
            predict_tracks_batch); called on up to `batch` windows at a time (every window has the same L).
        video: [T,H,W,3] in [0,1].
        window: frames per tracker call (the tracker's training length); stride: anchor spacing
            (default window - 1: one shared frame; smaller strides carry points hidden at an anchor).
        work_height: the tracker runs at this height (width by aspect, multiples of `multiple`); None = the
            video's own size (rounded to `multiple`).
        batch: windows per call (>= 1; the windows are independent, re-anchoring happens afterwards).
        max_disp: the tracker's displacement limit in px at the working size (its encoding's max_disp); when
            given, windows near it are split (module docstring) with `saturated` the fraction of points allowed
            near the limit. None: no check.
        short_last: the last window covers only the frames still missing (anchors 0, stride, 2 stride, ...; e.g.
            16 frames: 8 + 8 + 2 frames instead of three 8-frame windows), run at its own length.
    Returns:
        DenseTracks [T,H,W] at the video's resolution.
    """
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video: expected [T,H,W,3] in [0,1], got {got}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected an int >= 1, got {batch!r}")
    if max_disp is not None and not max_disp > 0:
        raise ValueError(f"max_disp: expected a positive number of pixels or None, got {max_disp!r}")
    T, H, W, _ = video.shape
    stride = window - 1 if stride is None else stride
    starts = window_starts(T, window, stride)
    h, w = work_size(H, W, work_height, multiple)
    mode = "area" if h <= H and w <= W else "bilinear"
    small = video if (h, w) == (H, W) else F.interpolate(
        video.permute(0, 3, 1, 2).float(), size=(h, w), mode=mode).permute(0, 2, 3, 1).clamp(0, 1).contiguous()
    L = min(window, T)
    spans = [(a, L) for a in starts]
    if short_last:
        spans = [(0, L)]
        while spans[-1][0] + spans[-1][1] < T:
            a = spans[-1][0] + stride
            spans.append((a, min(L, T - a)))
    done: list[tuple[int, DenseTracks]] = []
    first = True
    while spans:
        if first and short_last:  # windows of each length in their own calls, unpadded
            by_len: dict[int, list[int]] = {}
            for j, (_, k) in enumerate(spans):
                by_len.setdefault(k, []).append(j)
            tracks = [None] * len(spans)
            for k, idx in by_len.items():
                for j, tr in zip(idx, _predict_spans(predict_windows, small, [spans[j] for j in idx], k, batch)):
                    tracks[j] = tr
        else:
            tracks = _predict_spans(predict_windows, small, spans, L, batch)
        first = False
        todo = []
        for (a, k), tr in zip(spans, tracks):
            if max_disp is not None and k > 2 and _saturated(tr, max_disp, saturated):
                half = k // 2 + 1  # two spans of `half` frames sharing frame a + half - 1
                todo += [(a, half), (a + half - 1, k - half + 1)]
            else:
                done.append((a, tr))
        spans = todo
    done.sort(key=lambda item: item[0])  # stable: a split span keeps its place among equal anchors
    return resize_tracks(chain_windows(done, T), H, W)


def refine_levels(height: int, work_height: int | None, max_height: int | None = None) -> list[int]:
    """Heights of the refinement passes above the working height: octaves work_height x 2, x 4, ... below the
    target, then the target = min(height, max_height) (the video's own height by default). E.g. 128 px from 64:
    [128]; 436 px: [128, 256, 436]. Empty when the target is not above the working height (or it is None)."""
    if work_height is None:
        return []
    target = height if max_height is None else min(height, max_height)
    levels, h = [], work_height * 2
    while h < target:
        levels.append(h)
        h *= 2
    return levels + [target] if target > work_height else []


def refine_frames(num_frames: int, window: int = 8, spacing: float = 2.0) -> list[int]:
    """Frames whose residual `refine_tracks` measures: n (window - 1) frames evenly spaced over (0, T - 1]
    (always T - 1), n = max(1, round((T - 1) / (spacing (window - 1)))), i.e. about every `spacing` frames;
    all of them when the clip is shorter."""
    if window < 2 or not spacing > 0 or num_frames < 2:
        raise ValueError(f"window/spacing/num_frames: expected >= 2 / > 0 / >= 2, got {window}/{spacing}/{num_frames}")
    k = max(1, round((num_frames - 1) / (spacing * (window - 1)))) * (window - 1)
    if k >= num_frames - 1:
        return list(range(1, num_frames))
    return sorted({int(round(float(x))) for x in torch.linspace(num_frames - 1, 0, k + 1)[:-1]})


def tile_starts(n: int, tile: int, overlap: int = 0) -> list[int]:
    """Starts of `tile`-long windows every tile - overlap covering [0, n) (the last one ends at n)."""
    if tile >= n:
        return [0]
    step = max(1, tile - overlap)
    out = list(range(0, n - tile + 1, step))
    return out if out[-1] == n - tile else out + [n - tile]


def sample_at(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """field [T,h,w,C] and xy [T,h',w',2] px -> [T,h',w',C]: frame t's field sampled bilinearly at xy[t]
    (border padding)."""
    h, w = field.shape[1:3]
    g = torch.stack([xy[..., 0] * (2.0 / max(w - 1, 1)) - 1, xy[..., 1] * (2.0 / max(h - 1, 1)) - 1], -1)
    return F.grid_sample(field.permute(0, 3, 1, 2).float(), g.float(), mode="bilinear", padding_mode="border",
                         align_corners=True).permute(0, 2, 3, 1)


def _interp_time(d: torch.Tensor, known: list[int]) -> torch.Tensor:
    """d [T,...] known at frames `known` (sorted, including 0) -> linear in time between them, held after."""
    for t in range(d.shape[0]):
        if t in known:
            continue
        lo = max(k for k in known if k < t)
        hi = [k for k in known if k > t]
        if not hi:
            d[t] = d[lo]
            continue
        a = (t - lo) / (min(hi) - lo)
        d[t] = (1 - a) * d[lo] + a * d[min(hi)]
    return d


def refine_tracks(predict_windows: Callable[[torch.Tensor], list[DenseTracks]], video: torch.Tensor,
                  tracks: DenseTracks, height: int | None = None, window: int = 8, tile: int = 64, overlap: int = 0,
                  spacing: float = 2.0, batch: int = 8, multiple: int = 8, smooth: int = 0,
                  progress: bool = False) -> DenseTracks:
    """One refinement pass of first-frame-anchored tracks with the tracker itself (warp, re-track the residual).

    At `height` (width by aspect; None = the video's size) every frame t is warped to frame 0 by the current
    tracks (where they are right, warped frame t equals frame 0), and the tracker measures the residual motion
    on clips [frame 0, warped frames ...] of up to `window` frames cut into `tile` x `tile` tiles (its
    training size, so a large frame costs tiles, not a larger token grid; residual motion is small, so the
    encoding's range is no limit). Only `refine_frames` (about every `spacing` frames; all in a short clip) are
    measured; the residual is linear in time between them (0 at frame 0), which also smooths it. A frame-0
    point p then moves to xy_t(p + r_t(p)). Visibility and depth are kept.

    Args:
        predict_windows: videos [N,L,th,tw,3] -> N DenseTracks (e.g. `MoawTracker.predict_tracks_batch`).
        video: [T,H,W,3] in [0,1]; tracks: DenseTracks [T,h',w'] of it at any resolution (e.g. `track_long`'s).
        overlap: tile overlap in px (tent-weighted blend); batch: clips per predictor call; progress: a tqdm bar.
        smooth: box filter (px) on each measured frame's residual once the tiles are stitched (`smooth_tracks`;
            0/1 = off): tiles meet their neighbours' values, so it also blends the seams between them.
    Returns:
        DenseTracks [T,H,W] at the video's resolution.
    """
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"video: expected [T,H,W,3] in [0,1], got {got}")
    if not isinstance(tracks, DenseTracks) or tracks.num_frames != video.shape[0]:
        raise ValueError(f"tracks: expected DenseTracks of the video's {video.shape[0]} frames, got "
                         f"{tracks.num_frames if isinstance(tracks, DenseTracks) else type(tracks).__name__}")
    if not isinstance(batch, int) or batch < 1 or not isinstance(tile, int) or tile < multiple \
            or not 0 <= overlap < tile:
        raise ValueError(f"batch/tile/overlap: expected batch >= 1, tile >= {multiple}, 0 <= overlap < tile, "
                         f"got {batch}/{tile}/{overlap}")
    T, H, W, _ = video.shape
    if T < 2:
        return resize_tracks(tracks, H, W)
    h, w = work_size(H, W, height, multiple)
    mode = "area" if h <= H and w <= W else "bilinear"
    small = video.float() if (h, w) == (H, W) else F.interpolate(
        video.permute(0, 3, 1, 2).float(), size=(h, w), mode=mode).permute(0, 2, 3, 1).clamp(0, 1).contiguous()
    xy = resize_tracks(tracks, h, w).xy.float()
    warped = sample_at(small, xy)  # where the tracks are right, every warped frame looks like frame 0
    warped[0] = small[0]
    frames = refine_frames(T, window, spacing)
    groups = [frames[i:i + window - 1] for i in range(0, len(frames), window - 1)]
    L = 1 + max(len(g) for g in groups)
    th, tw = min(tile, h), min(tile, w)
    ramp = lambda n: torch.minimum(torch.arange(n) + 1.0, n - torch.arange(n, dtype=torch.float32))
    weight = (ramp(th)[:, None] * ramp(tw)[None, :]).clamp_min(1.0) if overlap else torch.ones(th, tw)
    jobs = [(g, y, x) for g in groups for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    resid = torch.zeros(T, h, w, 2)
    total = torch.zeros(h, w)
    for i in tqdm(range(0, len(jobs), batch), desc=f"refine at {h} px", disable=not progress, leave=False):
        chunk = jobs[i:i + batch]
        clips = []
        for g, y, x in chunk:
            fr = [0] + g + [g[-1]] * (L - 1 - len(g))
            clips.append(warped[fr, y:y + th, x:x + tw])
        res = list(predict_windows(torch.stack(clips).contiguous()))
        if len(res) != len(chunk):
            raise ValueError(f"predict_windows: expected {len(chunk)} DenseTracks, got {len(res)}")
        for (g, y, x), r in zip(chunk, res):
            resid[g, y:y + th, x:x + tw] += r.displacement()[1:1 + len(g)].float() * weight[None, :, :, None]
    for y in tile_starts(h, th, overlap):
        for x in tile_starts(w, tw, overlap):
            total[y:y + th, x:x + tw] += weight
    resid = resid / total[None, :, :, None]
    if smooth > 1:  # on the stitched field: tiles meet their real neighbours (no seam), not replicated edges
        resid = smooth_tracks(DenseTracks(pixel_grid(h, w)[None] + resid, torch.ones(T, h, w, dtype=torch.bool)),
                              smooth).displacement()
    resid = _interp_time(resid, [0] + frames)
    new = sample_at(xy, pixel_grid(h, w)[None] + resid)  # p -> xy_t(p + r_t(p))
    delta = new - xy
    delta[0] = 0
    if (h, w) != (H, W):
        delta = F.interpolate(delta.permute(0, 3, 1, 2), size=(H, W), mode="bilinear",
                              align_corners=False).permute(0, 2, 3, 1) * torch.tensor([W / w, H / h])
    full = resize_tracks(tracks, H, W)
    return DenseTracks(full.xy.float() + delta, full.visible, full.depth)
