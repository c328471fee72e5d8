"""Dense first-frame-anchored tracks: the container, their image encoding and conversions.

Owns `DenseTracks` (see docs/CONVENTIONS.md), the colour-wheel / grey image encoding that the Moaw
tracker is trained to output (`encode_track_images` / `decode_track_images`, `roundtrip_error`),
and conversions to sparse point tracks and frame-to-frame flow (`dense_to_sparse`, `dense_to_flow`,
`flows_to_tracks`).

Image encoding (all channels float in [0, 1]):
- flow: the displacement d = xy[t] - xy[0] as HSV with hue = atan2(dy, dx) / 2pi (image axes: x right,
  y down, so hue 0 = red = moving right, hue 1/4 = chartreuse-green = moving down), saturation =
  min(|d| / max_disp, 1), value = 1. No displacement is white; black never appears. Displacements
  longer than `max_disp` are clipped to `max_disp` (direction kept).
- depth: grey (r = g = b) = (depth - near) / (far - near), clipped; `depth_range=(near, far)` recorded.
- visibility: grey 1 = visible, 0 = not; decoded with threshold 0.5.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Codec = tuple[Callable[[torch.Tensor], object], Callable[[object], torch.Tensor]]


def _check_tensor(name: str, value, ndim: int, last: int | None = None) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.ndim != ndim or (last is not None and value.shape[-1] != last):
        want = f"a {ndim}-D tensor" + (f" with last dim {last}" if last is not None else "")
        raise ValueError(f"{name}: expected {want}, got shape {tuple(value.shape)}")


@dataclass
class DenseTracks:
    """Tracks of every frame-0 pixel. xy [T,H,W,2] (x, y) px with xy[0,i,j] == (j,i);
    visible [T,H,W] bool; depth [T,H,W] float (larger = farther) or None."""

    xy: torch.Tensor
    visible: torch.Tensor
    depth: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_tensor("DenseTracks.xy", self.xy, 4, 2)
        if not self.xy.is_floating_point():
            raise TypeError(f"DenseTracks.xy: expected a float tensor, got {self.xy.dtype}")
        _check_tensor("DenseTracks.visible", self.visible, 3)
        if self.visible.dtype != torch.bool:
            raise TypeError(f"DenseTracks.visible: expected dtype torch.bool, got {self.visible.dtype}")
        if self.visible.shape != self.xy.shape[:3]:
            raise ValueError(f"DenseTracks.visible: expected shape {tuple(self.xy.shape[:3])} "
                             f"(matching xy), got {tuple(self.visible.shape)}")
        if self.depth is not None:
            _check_tensor("DenseTracks.depth", self.depth, 3)
            if self.depth.shape != self.xy.shape[:3]:
                raise ValueError(f"DenseTracks.depth: expected shape {tuple(self.xy.shape[:3])} "
                                 f"(matching xy), got {tuple(self.depth.shape)}")

    @property
    def num_frames(self) -> int:
        return self.xy.shape[0]

    @property
    def height(self) -> int:
        return self.xy.shape[1]

    @property
    def width(self) -> int:
        return self.xy.shape[2]

    def displacement(self) -> torch.Tensor:
        """Returns [T,H,W,2] xy[t] - xy[0]."""
        return self.xy - self.xy[:1]

    def to(self, device) -> "DenseTracks":
        depth = None if self.depth is None else self.depth.to(device)
        return DenseTracks(self.xy.to(device), self.visible.to(device), depth)


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Returns [H,W,2] with grid[i, j] == (j, i)."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def identity_tracks(num_frames: int, height: int, width: int, device=None) -> DenseTracks:
    """Static tracks: every pixel stays put and is visible in all frames (depth None)."""
    if min(num_frames, height, width) < 1:
        raise ValueError(f"identity_tracks: expected positive T, H, W, got {(num_frames, height, width)}")
    xy = pixel_grid(height, width, device).expand(num_frames, height, width, 2).clone()
    return DenseTracks(xy, torch.ones(num_frames, height, width, dtype=torch.bool, device=device))


def flip_tracks(t: DenseTracks) -> DenseTracks:
    """Tracks of the horizontally mirrored video: xy'[t,i,j] = (W-1-x, y) of pixel (i, W-1-j)."""
    xy = t.xy.flip(2)
    xy = torch.stack([t.width - 1 - xy[..., 0], xy[..., 1]], -1)
    return DenseTracks(xy, t.visible.flip(2), None if t.depth is None else t.depth.flip(2))


def pack_tracks(tracks: DenseTracks) -> torch.Tensor:
    """Returns [T,H,W,4] float = (x, y, visible, depth or 0), convenient for DataLoader collation."""
    depth = tracks.depth if tracks.depth is not None else torch.zeros_like(tracks.xy[..., 0])
    return torch.cat([tracks.xy, tracks.visible[..., None].to(tracks.xy.dtype), depth[..., None]], -1)


def unpack_tracks(packed: torch.Tensor, has_depth: bool = True) -> DenseTracks:
    """Inverse of `pack_tracks` for one clip: packed [T,H,W,4]."""
    _check_tensor("packed", packed, 4, 4)
    return DenseTracks(packed[..., :2], packed[..., 2] > 0.5, packed[..., 3] if has_depth else None)


# ----------------------------------------------------------------------------- image encoding
@dataclass(frozen=True)
class TrackImages:
    """Tracks as images, all float [T,H,W,3] in [0,1]; the encoding parameters travel with them."""

    flow: torch.Tensor
    visibility: torch.Tensor
    max_disp: float
    depth: torch.Tensor | None = None
    depth_range: tuple[float, float] | None = None


def _hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    """hue, sat [...] in [0,1], value 1 -> rgb [...,3]."""
    n = torch.tensor([5.0, 3.0, 1.0], device=hue.device, dtype=hue.dtype)
    k = torch.remainder(n + hue[..., None] * 6.0, 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return 1.0 - sat[..., None] * ramp


def _rgb_to_hue_sat(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [...,3] -> hue [...] in [0,1), saturation [...] in [0,1] (standard HSV)."""
    r, g, b = rgb.unbind(-1)
    mx, arg = rgb.max(dim=-1)
    mn = rgb.min(dim=-1).values
    delta = mx - mn
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(arg == 0, torch.remainder((g - b) / safe, 6.0),
                    torch.where(arg == 1, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = torch.where(delta > 0, h / 6.0, torch.zeros_like(h))
    sat = torch.where(mx > 0, delta / torch.where(mx > 0, mx, torch.ones_like(mx)), torch.zeros_like(mx))
    return torch.remainder(h, 1.0), sat


def encode_track_images(tracks: DenseTracks, max_disp: float,
                        depth_range: tuple[float, float] | None = None) -> TrackImages:
    """Encode tracks as flow-wheel, depth and visibility images.

    Args:
        tracks: DenseTracks with T frames of H x W.
        max_disp: displacement (px) mapped to full saturation; longer ones are clipped.
        depth_range: (near, far) mapped to grey 0..1; default the clip's (min, max) depth
            (far = near + 1 if the depth is constant). Ignored when tracks.depth is None.
    Returns:
        TrackImages with flow, visibility [T,H,W,3] (and depth [T,H,W,3] if tracks have depth).
    """
    if not isinstance(tracks, DenseTracks):
        raise TypeError(f"tracks: expected DenseTracks, got {type(tracks).__name__}")
    if not (isinstance(max_disp, (int, float)) and max_disp > 0):
        raise ValueError(f"max_disp: expected a positive number of pixels, got {max_disp!r}")
    d = tracks.displacement().float()
    mag = torch.linalg.vector_norm(d, dim=-1)
    hue = torch.remainder(torch.atan2(d[..., 1], d[..., 0]) / (2 * math.pi), 1.0)
    flow = _hsv_to_rgb(hue, torch.clamp(mag / max_disp, 0.0, 1.0))
    vis = tracks.visible.float()[..., None].expand(*tracks.visible.shape, 3).contiguous()
    depth_img, rng = None, None
    if tracks.depth is not None:
        rng = _depth_range(tracks.depth, depth_range)
        g = torch.clamp((tracks.depth.float() - rng[0]) / (rng[1] - rng[0]), 0.0, 1.0)
        depth_img = g[..., None].expand(*g.shape, 3).contiguous()
    return TrackImages(flow, vis, float(max_disp), depth_img, rng)


def _depth_range(depth: torch.Tensor, depth_range) -> tuple[float, float]:
    if depth_range is None:
        near, far = float(depth.min()), float(depth.max())
        return (near, far if far > near else near + 1.0)
    if len(depth_range) != 2 or not float(depth_range[1]) > float(depth_range[0]):
        raise ValueError(f"depth_range: expected (near, far) with far > near, got {depth_range!r}")
    return (float(depth_range[0]), float(depth_range[1]))


def decode_track_images(images: TrackImages) -> DenseTracks:
    """Invert `encode_track_images`: xy[0] is the pixel grid, xy[t] = grid + decoded displacement.

    Grey images are read as the mean of their 3 channels (robust to a lossy codec).
    """
    if not isinstance(images, TrackImages):
        raise TypeError(f"images: expected TrackImages, got {type(images).__name__}")
    _check_tensor("images.flow", images.flow, 4, 3)
    _check_tensor("images.visibility", images.visibility, 4, 3)
    T, H, W, _ = images.flow.shape
    if images.visibility.shape != images.flow.shape:
        raise ValueError(f"images.visibility: expected shape {tuple(images.flow.shape)}, "
                         f"got {tuple(images.visibility.shape)}")
    hue, sat = _rgb_to_hue_sat(images.flow.float().clamp(0.0, 1.0))
    mag, ang = sat * images.max_disp, hue * (2 * math.pi)
    disp = torch.stack([mag * torch.cos(ang), mag * torch.sin(ang)], dim=-1)
    xy = pixel_grid(H, W, images.flow.device) + disp
    xy = torch.cat([pixel_grid(H, W, images.flow.device)[None], xy[1:]], dim=0)
    visible = images.visibility.float().mean(-1) > 0.5
    visible[0] = True
    depth = None
    if images.depth is not None:
        if images.depth_range is None:
            raise ValueError("images.depth_range: required to decode a depth image, got None")
        near, far = images.depth_range
        depth = images.depth.float().mean(-1).clamp(0.0, 1.0) * (far - near) + near
    return DenseTracks(xy, visible, depth)


def to_channels(images: TrackImages) -> torch.Tensor:
    """Returns [T,H,W,5] = flow rgb, depth grey (0 if no depth), visibility grey."""
    depth = images.depth[..., :1] if images.depth is not None else torch.zeros_like(images.flow[..., :1])
    return torch.cat([images.flow, depth, images.visibility[..., :1]], dim=-1)


def from_channels(channels: torch.Tensor, max_disp: float,
                  depth_range: tuple[float, float] | None = None) -> TrackImages:
    """Inverse of `to_channels`; depth is None when depth_range is None."""
    _check_tensor("channels", channels, 4, 5)
    depth = None if depth_range is None else channels[..., 3:4].expand(*channels.shape[:3], 3)
    vis = channels[..., 4:5].expand(*channels.shape[:3], 3)
    return TrackImages(channels[..., :3], vis, float(max_disp), depth,
                       None if depth_range is None else tuple(depth_range))


def _quantize(x: torch.Tensor | None, bits: int | None) -> torch.Tensor | None:
    if x is None or bits is None:
        return x
    levels = float(2 ** bits - 1)
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


def roundtrip_error(tracks: DenseTracks, max_disp: float, quantize_bits: int | None = 8,
                    codec: Codec | None = None,
                    depth_range: tuple[float, float] | None = None) -> dict[str, float]:
    """Encode -> (quantise) -> (codec encode/decode) -> decode, and compare with `tracks`.

    Args:
        tracks: ground truth DenseTracks.
        max_disp: encoding scale in px.
        quantize_bits: bits per channel (8 = PNG-like); None = no quantisation.
        codec: optional (encode, decode) pair applied to each [T,H,W,3] image video separately,
            e.g. a VAE: encode(video [T,H,W,3] in [0,1]) -> latents, decode(latents) -> video.
        depth_range: forwarded to `encode_track_images`.
    Returns:
        dict with mean_px / max_px (position error over all pixels and frames), mean_px_unclipped
        (pixels whose true displacement <= max_disp), clipped_frac, visibility_acc and, with depth,
        depth_abs_err (mean absolute error in depth units).
    """
    images = encode_track_images(tracks, max_disp, depth_range)
    def through(x):
        x = _quantize(x, quantize_bits)
        return x if x is None or codec is None else codec[1](codec[0](x)).to(x.device).float()
    images = TrackImages(through(images.flow), through(images.visibility), images.max_disp,
                         through(images.depth), images.depth_range)
    out = decode_track_images(images)
    err = torch.linalg.vector_norm(out.xy - tracks.xy.float(), dim=-1)
    unclipped = torch.linalg.vector_norm(tracks.displacement(), dim=-1) <= max_disp
    res = {
        "mean_px": float(err.mean()),
        "max_px": float(err.max()),
        "mean_px_unclipped": float(err[unclipped].mean()) if bool(unclipped.any()) else 0.0,
        "max_px_unclipped": float(err[unclipped].max()) if bool(unclipped.any()) else 0.0,
        "clipped_frac": float(1.0 - unclipped.float().mean()),
        "visibility_acc": float((out.visible == tracks.visible).float().mean()),
    }
    if tracks.depth is not None:
        res["depth_abs_err"] = float((out.depth - tracks.depth.float()).abs().mean())
    return res


# ----------------------------------------------------------------------------- conversions
def _to_grid_coords(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel (x, y) -> grid_sample coordinates in [-1, 1] (align_corners=True)."""
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=xy.device)
    return xy * scale - 1.0


def grid_points(height: int, width: int, n: int) -> torch.Tensor:
    """An n x n grid of points at cell centres, row-major (y outer, x inner).

    Returns:
        [n*n, 2] (x, y) px, x_k = (k + 0.5) * W / n - 0.5.
    """
    if min(height, width, n) < 1:
        raise ValueError(f"grid_points: expected positive height, width, n, got {(height, width, n)}")
    xs = (torch.arange(n, dtype=torch.float32) + 0.5) * width / n - 0.5
    ys = (torch.arange(n, dtype=torch.float32) + 0.5) * height / n - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def dense_to_sparse(tracks: DenseTracks, points_xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample dense tracks at frame-0 query points.

    Args:
        tracks: DenseTracks [T,H,W].
        points_xy: [N,2] (x, y) px in frame 0, inside [0, W-1] x [0, H-1].
    Returns:
        points [N,T,2] px and visible [N,T] bool (bilinear visibility >= 0.5).
    """
    _check_tensor("points_xy", points_xy, 2, 2)
    T, H, W = tracks.num_frames, tracks.height, tracks.width
    p = points_xy.to(tracks.xy.device, torch.float32)
    outside = (p[:, 0] < 0) | (p[:, 0] > W - 1) | (p[:, 1] < 0) | (p[:, 1] > H - 1)
    if bool(outside.any()):
        raise ValueError(f"points_xy: expected points inside [0, {W - 1}] x [0, {H - 1}], "
                         f"got {int(outside.sum())} outside, e.g. {p[outside][0].tolist()}")
    fields = torch.cat([tracks.xy.float(), tracks.visible[..., None].float()], -1).permute(0, 3, 1, 2)
    grid = _to_grid_coords(p, H, W)[None, None].expand(T, 1, -1, 2)
    out = F.grid_sample(fields, grid, mode="bilinear", align_corners=True)[:, :, 0]  # [T,3,N]
    out = out.permute(2, 0, 1)
    return out[..., :2].contiguous(), out[..., 2] >= 0.5


def sparse_from_grid(tracks: DenseTracks, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`dense_to_sparse` at `grid_points(H, W, n)`: points [n*n,T,2], visible [n*n,T]."""
    return dense_to_sparse(tracks, grid_points(tracks.height, tracks.width, n))


def dense_to_flow(tracks: DenseTracks, t: int,
                  return_valid: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Frame-to-frame flow t -> t+1 on the frame-t pixel grid, derived from frame-0-anchored tracks.

    Approximation: each track visible at t carries d = xy[t+1] - xy[t] and is forward-splatted
    bilinearly at xy[t]; a pixel's flow is the weighted mean of what lands on it. Pixels of frame t
    that no frame-0 pixel maps to (disocclusions, content entering the frame, gaps under
    magnification) get flow 0 and valid False. Exact for pure translation.

    Returns:
        flow [H,W,2] (dx, dy) px, and valid [H,W] bool if return_valid.
    """
    T, H, W = tracks.num_frames, tracks.height, tracks.width
    if not (isinstance(t, int) and 0 <= t < T - 1):
        raise ValueError(f"t: expected an int in [0, {T - 2}], got {t!r}")
    src = tracks.xy[t].reshape(-1, 2).float()
    val = (tracks.xy[t + 1] - tracks.xy[t]).reshape(-1, 2).float()
    keep = tracks.visible[t].reshape(-1)
    src, val = src[keep], val[keep]
    acc = torch.zeros(H * W, 2, device=src.device)
    wsum = torch.zeros(H * W, device=src.device)
    base = torch.floor(src)
    frac = src - base
    for ox in (0, 1):
        for oy in (0, 1):
            x, y = base[:, 0] + ox, base[:, 1] + oy
            w = (frac[:, 0] if ox else 1 - frac[:, 0]) * (frac[:, 1] if oy else 1 - frac[:, 1])
            ok = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1) & (w > 0)
            idx = (y[ok] * W + x[ok]).long()
            acc.index_add_(0, idx, val[ok] * w[ok, None])
            wsum.index_add_(0, idx, w[ok])
    valid = wsum > 1e-4
    flow = torch.where(valid[:, None], acc / wsum.clamp_min(1e-4)[:, None], torch.zeros_like(acc))
    flow, valid = flow.reshape(H, W, 2), valid.reshape(H, W)
    return (flow, valid) if return_valid else flow


def _sample(field: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample field [H,W,C] at xy [H,W,2] px (border padding) -> [H,W,C]."""
    H, W = field.shape[:2]
    grid = _to_grid_coords(xy, H, W)[None]
    out = F.grid_sample(field.permute(2, 0, 1)[None], grid, mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out[0].permute(1, 2, 0)


def flows_to_tracks(flows: torch.Tensor, backward_flows: torch.Tensor | None = None,
                    fb_alpha: float = 0.01, fb_beta: float = 0.5) -> DenseTracks:
    """Chain frame-to-frame flows into frame-0-anchored tracks.

    xy[t+1] = xy[t] + flows[t] sampled bilinearly at xy[t]. A track becomes invisible once it
    leaves [0, W-1] x [0, H-1] or (with backward_flows) fails the forward-backward check
    |f + b|^2 > fb_alpha (|f|^2 + |b|^2) + fb_beta (Sundaram et al. 2010), and stays invisible:
    chained flow cannot re-acquire a lost point.

    Args:
        flows: [T-1,H,W,2] forward flow t -> t+1.
        backward_flows: optional [T-1,H,W,2] flow t+1 -> t (on frame t+1 pixels).
    Returns:
        DenseTracks with T frames, depth None.
    """
    _check_tensor("flows", flows, 4, 2)
    if backward_flows is not None:
        _check_tensor("backward_flows", backward_flows, 4, 2)
        if backward_flows.shape != flows.shape:
            raise ValueError(f"backward_flows: expected shape {tuple(flows.shape)}, "
                             f"got {tuple(backward_flows.shape)}")
    n, H, W, _ = flows.shape
    xy = [pixel_grid(H, W, flows.device)]
    vis = [torch.ones(H, W, dtype=torch.bool, device=flows.device)]
    for t in range(n):
        f = _sample(flows[t].float(), xy[t])
        nxt = xy[t] + f
        ok = vis[t] & (nxt[..., 0] >= 0) & (nxt[..., 0] <= W - 1) & (nxt[..., 1] >= 0) & (nxt[..., 1] <= H - 1)
        if backward_flows is not None:
            b = _sample(backward_flows[t].float(), nxt)
            lhs = ((f + b) ** 2).sum(-1)
            ok &= lhs <= fb_alpha * ((f ** 2).sum(-1) + (b ** 2).sum(-1)) + fb_beta
        xy.append(nxt)
        vis.append(ok)
    return DenseTracks(torch.stack(xy), torch.stack(vis))
