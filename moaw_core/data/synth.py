"""Procedural training clips with exact dense tracks, depth order and visibility.

A clip is a background layer seen by a moving camera (pan / tilt / zoom / roll) plus K textured
foreground layers (ellipses, star polygons) with affine motion, composited by depth order
(layer 0 = background = farthest, layer K = nearest). Every layer has a frame-to-frame map
A_t (frame-0 image coords -> frame-t image coords): A_t = C_t for the background and C_t M_t for
a foreground layer, C_t the camera and M_t the object motion (both identity at t = 0).

- Rendering is inverse mapping: pixel q of frame t shows the topmost layer L covering
  A_t^-1(q), coloured by its texture there. Textures are analytic functions of frame-0 coordinates
  (lattice value noise, stripes, checker, colour blobs, or crops of real frames), so the scene content
  for a seed does not depend on the motion: the same seed under six camera motions is the same scene.
- Tracks are forward mapping: xy[t] = A_t^L(p) for the frame-0 pixel p owned by layer L. It is
  visible at t iff xy[t] lies in [0, W-1] x [0, H-1] and no layer above L covers it there.
  Depth = layer depth / zoom_t (zoom read as a dolly move).

Camera sign convention: `pan_xy[t]` is the camera's offset in frame-0 px; content moves the other
way (pan_left = camera moves left = content moves right; tilt_up = content moves down).
`zoom[t] > 1` magnifies about the image centre; `rotation[t]` rolls the camera (content turns by -r).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from moaw_core.data.textures import TextureBank, random_texture, sample_texture
from moaw_core.tracking.tracks import DenseTracks, pack_tracks, pixel_grid

CAMERA_MOTION_CLASSES = ("pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out")
OBJECT_MOTION_CLASSES = ("left", "right", "up", "down")
_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def _profile(frames: int, gamma: float = 1.0) -> list[float]:
    return [(t / (frames - 1)) ** gamma if frames > 1 else 0.0 for t in range(frames)]


@dataclass(frozen=True)
class CameraMotion:
    """Per-frame camera state; frame 0 must be the identity (pan 0, zoom 1, rotation 0)."""

    pan_xy: tuple[tuple[float, float], ...]
    zoom: tuple[float, ...]
    rotation: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.pan_xy)
        if n < 1 or len(self.zoom) != n or len(self.rotation) != n:
            raise ValueError(f"CameraMotion: expected equal non-zero lengths, got pan_xy {n}, "
                             f"zoom {len(self.zoom)}, rotation {len(self.rotation)}")
        if tuple(self.pan_xy[0]) != (0.0, 0.0) or self.zoom[0] != 1.0 or self.rotation[0] != 0.0:
            raise ValueError("CameraMotion: expected identity at frame 0 (pan (0,0), zoom 1, rotation 0), "
                             f"got {self.pan_xy[0]}, {self.zoom[0]}, {self.rotation[0]}")
        if min(self.zoom) <= 0:
            raise ValueError(f"CameraMotion.zoom: expected positive factors, got min {min(self.zoom)}")

    @property
    def frames(self) -> int:
        return len(self.zoom)

    @classmethod
    def static(cls, frames: int) -> "CameraMotion":
        return cls(((0.0, 0.0),) * frames, (1.0,) * frames, (0.0,) * frames)

    @classmethod
    def pan(cls, dx_per_frame: float, dy_per_frame: float, frames: int) -> "CameraMotion":
        """Camera moves (dx, dy) px per frame (content moves the opposite way)."""
        return cls(tuple((t * dx_per_frame, t * dy_per_frame) for t in range(frames)),
                   (1.0,) * frames, (0.0,) * frames)

    @classmethod
    def zoom_by(cls, factor_per_frame: float, frames: int) -> "CameraMotion":
        """zoom[t] = factor_per_frame ** t (> 1 zooms in)."""
        return cls(((0.0, 0.0),) * frames, tuple(factor_per_frame ** t for t in range(frames)),
                   (0.0,) * frames)

    @classmethod
    def rotate(cls, radians_per_frame: float, frames: int) -> "CameraMotion":
        return cls(((0.0, 0.0),) * frames, (1.0,) * frames,
                   tuple(t * radians_per_frame for t in range(frames)))

    @classmethod
    def preset(cls, name: str, frames: int, speed: float = 2.0, zoom_rate: float = 1.04) -> "CameraMotion":
        """One of CAMERA_MOTION_CLASSES; speed in px/frame for pans and tilts."""
        table = {"pan_left": (-speed, 0.0), "pan_right": (speed, 0.0),
                 "tilt_up": (0.0, -speed), "tilt_down": (0.0, speed)}
        if name in table:
            return cls.pan(*table[name], frames)
        if name in ("zoom_in", "zoom_out"):
            return cls.zoom_by(zoom_rate if name == "zoom_in" else 1.0 / zoom_rate, frames)
        raise ValueError(f"name: expected one of {CAMERA_MOTION_CLASSES}, got {name!r}")


@dataclass(frozen=True)
class LayerMotion:
    """Object motion in frame-0 coords about its centre: p -> c + translation[t] + scale[t] R(rotation[t]) (p - c).

    center: frame-0 centre of the shape (None = random); frame 0 must be the identity.
    """

    translation: tuple[tuple[float, float], ...]
    rotation: tuple[float, ...]
    scale: tuple[float, ...]
    center: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        n = len(self.translation)
        if n < 1 or len(self.rotation) != n or len(self.scale) != n:
            raise ValueError(f"LayerMotion: expected equal non-zero lengths, got translation {n}, "
                             f"rotation {len(self.rotation)}, scale {len(self.scale)}")
        if tuple(self.translation[0]) != (0.0, 0.0) or self.rotation[0] != 0.0 or self.scale[0] != 1.0:
            raise ValueError("LayerMotion: expected identity at frame 0 (translation (0,0), rotation 0, "
                             f"scale 1), got {self.translation[0]}, {self.rotation[0]}, {self.scale[0]}")
        if min(self.scale) <= 0:
            raise ValueError(f"LayerMotion.scale: expected positive factors, got min {min(self.scale)}")

    @property
    def frames(self) -> int:
        return len(self.scale)

    @classmethod
    def linear(cls, dx_per_frame: float, dy_per_frame: float, frames: int, rotation_per_frame: float = 0.0,
               scale_per_frame: float = 1.0, center: tuple[float, float] | None = None) -> "LayerMotion":
        return cls(tuple((t * dx_per_frame, t * dy_per_frame) for t in range(frames)),
                   tuple(t * rotation_per_frame for t in range(frames)),
                   tuple(scale_per_frame ** t for t in range(frames)), center)

    @classmethod
    def static(cls, frames: int, center: tuple[float, float] | None = None) -> "LayerMotion":
        return cls.linear(0.0, 0.0, frames, center=center)

    @classmethod
    def direction(cls, name: str, frames: int, speed: float = 2.0,
                  center: tuple[float, float] | None = None) -> "LayerMotion":
        """One of OBJECT_MOTION_CLASSES (left, right, up, down) at `speed` px/frame."""
        if name not in _DIRECTIONS:
            raise ValueError(f"name: expected one of {OBJECT_MOTION_CLASSES}, got {name!r}")
        dx, dy = _DIRECTIONS[name]
        return cls.linear(dx * speed, dy * speed, frames, center=center)


@dataclass(frozen=True)
class SynthConfig:
    """Clip size and motion ranges for random clips (explicit motions override the ranges).

    max_translation, camera_pan: end-of-clip offset as a fraction of min(H, W) / of (W, H).
    max_rotation, camera_rotation: end-of-clip angle (radians). max_scale, camera_zoom: end-of-clip
    factor in [1/(1+x), 1+x]. Motions follow t^gamma profiles, gamma random in [0.6, 1.6].
    texture_dir: folder of videos/images for real-texture crops (None = procedural only), used for a
    layer with probability real_texture_prob. Depths: background `background_depth`, foreground
    layers uniform in `foreground_depth`, sorted so that higher layer index = nearer. still_camera: the
    probability that a random clip's camera does not move (`still_camera`; the layers still do).
    """

    frames: int = 8
    height: int = 64
    width: int = 64
    num_layers: tuple[int, int] = (1, 3)
    max_translation: float = 0.3
    max_rotation: float = 0.5
    max_scale: float = 0.3
    camera_pan: float = 0.15
    camera_zoom: float = 0.15
    camera_rotation: float = 0.0
    layer_size: tuple[float, float] = (0.12, 0.28)
    texture_dir: str | None = None
    real_texture_prob: float = 0.5
    background_depth: float = 10.0
    foreground_depth: tuple[float, float] = (2.0, 8.0)
    still_camera: float = 0.0

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 2:
            raise ValueError(f"SynthConfig: expected frames, height, width >= 2, got "
                             f"{(self.frames, self.height, self.width)}")
        if not 0.0 <= self.still_camera <= 1.0:
            raise ValueError(f"SynthConfig.still_camera: expected a probability in [0, 1], got {self.still_camera}")
        lo, hi = self.num_layers
        if not 0 <= lo <= hi:
            raise ValueError(f"SynthConfig.num_layers: expected 0 <= min <= max, got {self.num_layers}")


# ----------------------------------------------------------------------------- shapes and motion
@dataclass
class _Shape:
    """Ellipse (radii, angle) or star polygon (vertices relative to center, sorted by angle)."""

    kind: str
    center: tuple[float, float]
    radii: tuple[float, float]
    angle: float
    vertices: torch.Tensor  # [K, 2]
    vertex_angles: torch.Tensor  # [K] in [0, 2pi), increasing


def _random_shape(g: torch.Generator, cfg: SynthConfig, center: tuple[float, float] | None) -> _Shape:
    r = torch.rand(8, generator=g, dtype=torch.float64).tolist()
    k = int(torch.randint(3, 9, (), generator=g))
    jitter = torch.rand(k, 2, generator=g, dtype=torch.float64)
    m = min(cfg.height, cfg.width)
    radius = m * (cfg.layer_size[0] + (cfg.layer_size[1] - cfg.layer_size[0]) * r[0])
    if center is None:
        center = (cfg.width * (0.15 + 0.7 * r[1]), cfg.height * (0.15 + 0.7 * r[2]))
    ang = (torch.arange(k, dtype=torch.float64) + 0.6 * (jitter[:, 0] - 0.5)) * 2 * math.pi / k + r[3] * 2 * math.pi
    ang, order = torch.sort(torch.remainder(ang, 2 * math.pi))
    rad = radius * (0.6 + 0.4 * jitter[order, 1])
    verts = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], -1)
    kind = "ellipse" if r[4] < 0.5 else "polygon"
    return _Shape(kind, (float(center[0]), float(center[1])), (radius, radius * (0.5 + 0.5 * r[5])),
                  r[6] * math.pi, verts, ang)


def _inside(shape: _Shape, p: torch.Tensor) -> torch.Tensor:
    """Bool [N] for points p [N,2] (frame-0 coords of the layer)."""
    rel = p - torch.tensor(shape.center, dtype=p.dtype)
    if shape.kind == "ellipse":
        c, s = math.cos(shape.angle), math.sin(shape.angle)
        u, v = rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c
        return (u / shape.radii[0]) ** 2 + (v / shape.radii[1]) ** 2 <= 1.0
    k = len(shape.vertex_angles)
    a = torch.remainder(torch.atan2(rel[:, 1], rel[:, 0]), 2 * math.pi)
    i = torch.remainder(torch.searchsorted(shape.vertex_angles, a.contiguous(), right=True) - 1, k)
    v0, v1 = shape.vertices[i], shape.vertices[(i + 1) % k]
    e, r = v1 - v0, rel - v0
    # inside the triangle (center, v0, v1) iff on the same side of edge v0->v1 as the centre
    cross_p = e[:, 0] * r[:, 1] - e[:, 1] * r[:, 0]
    cross_c = e[:, 0] * (-v0[:, 1]) - e[:, 1] * (-v0[:, 0])
    return cross_p * cross_c >= 0


def _uniform(g: torch.Generator, n: int) -> list[float]:
    return torch.rand(n, generator=g, dtype=torch.float64).tolist()


def still_camera(seed: int, probability: float) -> bool:
    """Whether the random clip of `seed` keeps its camera still (objects still move), with `probability`: real
    footage is often shot from a tripod, which clips whose camera always moves never show a tracker. Drawn from
    its own stream, so the rest of a clip does not depend on it (probability 0: the clips of before)."""
    return probability > 0 and random.Random(int(seed) * 7 + 0x57111).random() < probability


def _random_camera(g: torch.Generator, cfg: SynthConfig) -> CameraMotion:
    u = _uniform(g, 5)
    prof = _profile(cfg.frames, math.exp(math.log(0.6) + u[0] * math.log(1.6 / 0.6)))
    pan = ((2 * u[1] - 1) * cfg.camera_pan * cfg.width, (2 * u[2] - 1) * cfg.camera_pan * cfg.height)
    zoom = (1 + cfg.camera_zoom) ** (2 * u[3] - 1)
    rot = (2 * u[4] - 1) * cfg.camera_rotation
    return CameraMotion(tuple((s * pan[0] + 0.0, s * pan[1] + 0.0) for s in prof),
                        tuple(zoom ** s for s in prof), tuple(s * rot + 0.0 for s in prof))


def _random_layer_motion(g: torch.Generator, cfg: SynthConfig) -> LayerMotion:
    u = _uniform(g, 5)
    prof = _profile(cfg.frames, math.exp(math.log(0.6) + u[0] * math.log(1.6 / 0.6)))
    dist = cfg.max_translation * min(cfg.height, cfg.width) * math.sqrt(u[1])
    tx, ty = dist * math.cos(2 * math.pi * u[2]), dist * math.sin(2 * math.pi * u[2])
    rot = (2 * u[3] - 1) * cfg.max_rotation
    scale = (1 + cfg.max_scale) ** (2 * u[4] - 1)
    return LayerMotion(tuple((s * tx + 0.0, s * ty + 0.0) for s in prof), tuple(s * rot + 0.0 for s in prof),
                       tuple(scale ** s for s in prof))


def _similarity(scale: torch.Tensor, angle: torch.Tensor, pre: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """[T,3,3] maps p -> post + scale R(angle) (p + pre); all inputs per frame (pre, post [T,2])."""
    c, s = torch.cos(angle) * scale, torch.sin(angle) * scale
    m = torch.zeros(len(scale), 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    m[:, :2, 2] = post + torch.einsum("tij,tj->ti", m[:, :2, :2], pre)
    m[:, 2, 2] = 1.0
    return m


def _camera_matrices(cam: CameraMotion, height: int, width: int) -> torch.Tensor:
    """q = c + zoom R(-rotation) (p - c - pan)."""
    c = torch.tensor([(width - 1) / 2, (height - 1) / 2], dtype=torch.float64)
    pan = torch.tensor(cam.pan_xy, dtype=torch.float64)
    return _similarity(torch.tensor(cam.zoom, dtype=torch.float64), -torch.tensor(cam.rotation, dtype=torch.float64),
                       -c - pan, c.expand_as(pan))


def _layer_matrices(motion: LayerMotion, center: tuple[float, float]) -> torch.Tensor:
    c = torch.tensor(center, dtype=torch.float64)
    tr = torch.tensor(motion.translation, dtype=torch.float64)
    return _similarity(torch.tensor(motion.scale, dtype=torch.float64),
                       torch.tensor(motion.rotation, dtype=torch.float64), -c.expand_as(tr), c + tr)


def _apply(mats: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """mats [T,3,3], p [N,2] or [T,N,2] -> [T,N,2]."""
    return torch.einsum("tij,t...j->t...i", mats[:, :2, :2], p.expand(len(mats), *p.shape[-2:])) + mats[:, None, :2, 2]


# ----------------------------------------------------------------------------- rendering
@dataclass
class SynthClip:
    """video [T,H,W,3] in [0,1]; tracks (exact, with depth); layer_index [T,H,W] int64 (0 = background,
    higher = nearer); the motions and layer depths that made it."""

    video: torch.Tensor
    tracks: DenseTracks
    layer_index: torch.Tensor
    camera: CameraMotion
    layers: tuple[LayerMotion, ...] = field(default_factory=tuple)
    layer_depths: tuple[float, ...] = field(default_factory=tuple)


def _scene(seed: int, cfg: SynthConfig, num_layers: int | None, centers: list, bank: TextureBank | None):
    """Draw shapes, textures and depths from the scene generator (independent of motion)."""
    g = torch.Generator().manual_seed(seed)
    k = int(torch.randint(cfg.num_layers[0], cfg.num_layers[1] + 1, (), generator=g))
    k = k if num_layers is None else num_layers
    textures = [random_texture(g, bank, cfg.real_texture_prob)]
    shapes = []
    for i in range(k):
        shapes.append(_random_shape(g, cfg, centers[i] if i < len(centers) else None))
        textures.append(random_texture(g, bank, cfg.real_texture_prob))
    lo, hi = cfg.foreground_depth
    fg = sorted((lo + (hi - lo) * u for u in _uniform(g, k)), reverse=True)
    return shapes, textures, (cfg.background_depth, *fg)


def _check_motion(name: str, motion, kind, frames: int) -> None:
    if not isinstance(motion, kind):
        raise TypeError(f"{name}: expected {kind.__name__}, got {type(motion).__name__}")
    if motion.frames != frames:
        raise ValueError(f"{name}: expected {frames} frames (cfg.frames), got {motion.frames}")


def render_clip(seed: int, cfg: SynthConfig = SynthConfig(), camera: CameraMotion | None = None,
                layers: list[LayerMotion] | None = None, background_only: bool = False,
                textures: TextureBank | None = None) -> SynthClip:
    """Render one clip with exact tracks.

    Args:
        seed: scene and motion seed (same seed -> identical clip; the scene, i.e. shapes, textures and
            depths, depends only on the seed and the number of layers, not on the motion).
        cfg: SynthConfig (size and random motion ranges).
        camera: explicit camera motion (cfg.frames frames) or None for random.
        layers: explicit foreground motions, farthest first (their number sets K) or None for random.
        background_only: no foreground layers (static-scene camera-motion clips).
        textures: a TextureBank to reuse (default: one built from cfg.texture_dir, if set).
    Returns:
        SynthClip with video [T,H,W,3], tracks DenseTracks (depth set), layer_index [T,H,W].
    """
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"cfg: expected SynthConfig, got {type(cfg).__name__}")
    T, H, W = cfg.frames, cfg.height, cfg.width
    if camera is not None:
        _check_motion("camera", camera, CameraMotion, T)
    for i, m in enumerate(layers or []):
        _check_motion(f"layers[{i}]", m, LayerMotion, T)
    if background_only and layers:
        raise ValueError(f"layers: expected None with background_only=True, got {len(layers)} layers")
    if textures is None and cfg.texture_dir is not None:
        textures = TextureBank(cfg.texture_dir)
    n_layers = 0 if background_only else (None if layers is None else len(layers))
    shapes, texs, depths = _scene(seed, cfg, n_layers, [m.center for m in layers or []], textures)
    g = torch.Generator().manual_seed(seed + 0x9E3779B9)
    if camera is None:
        camera = _random_camera(g, cfg)  # drawn either way: the layers' motions do not depend on still_camera
        if still_camera(seed, cfg.still_camera):
            camera = CameraMotion.static(T)
    motions = tuple(layers) if layers is not None else tuple(_random_layer_motion(g, cfg) for _ in shapes)
    cam = _camera_matrices(camera, H, W)
    mats = [cam] + [cam @ _layer_matrices(m, s.center) for m, s in zip(motions, shapes)]
    inv = [torch.linalg.inv(m) for m in mats]
    grid = pixel_grid(H, W, dtype=torch.float64).reshape(-1, 2)

    # Render: topmost covering layer per output pixel, then its texture at the pre-image.
    pre = [_apply(m, grid) for m in inv]  # each [T, HW, 2]
    index = torch.zeros(T, H * W, dtype=torch.long)
    for li, s in enumerate(shapes, start=1):
        index[_inside(s, pre[li].reshape(-1, 2)).reshape(T, -1)] = li
    video = torch.zeros(T, H * W, 3)
    for li, tex in enumerate(texs):
        sel = index == li
        if bool(sel.any()):
            video[sel] = sample_texture(tex, pre[li][sel].float())
    tracks = _tracks(index[0], grid, mats, inv, shapes, depths, camera, H, W)
    return SynthClip(video.reshape(T, H, W, 3), tracks, index.reshape(T, H, W), camera, motions, depths)


def _tracks(owner: torch.Tensor, grid: torch.Tensor, mats: list, inv: list, shapes: list,
            depths: tuple, camera: CameraMotion, H: int, W: int) -> DenseTracks:
    """Forward-map frame-0 pixels through their own layer; occluded iff a nearer layer covers them."""
    T = mats[0].shape[0]
    xy = torch.zeros(T, H * W, 2, dtype=torch.float64)
    for li, m in enumerate(mats):
        sel = owner == li
        if bool(sel.any()):
            xy[:, sel] = _apply(m, grid[sel])
    xy[0] = grid
    occluded = torch.zeros(T, H * W, dtype=torch.bool)
    for li in range(1, len(mats)):
        below = owner < li
        if bool(below.any()):
            p = _apply(inv[li], xy[:, below])
            occluded[:, below] |= _inside(shapes[li - 1], p.reshape(-1, 2)).reshape(T, -1)
    x, y = xy[..., 0], xy[..., 1]
    inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    zoom = torch.tensor(camera.zoom, dtype=torch.float32)[:, None]
    depth = torch.tensor(depths, dtype=torch.float32)[owner][None] / zoom
    return DenseTracks(xy.float().reshape(T, H, W, 2), (inside & ~occluded).reshape(T, H, W),
                       depth.reshape(T, H, W))


class SynthDataset(torch.utils.data.Dataset):
    """Map-style dataset of random clips: item i -> (video [T,H,W,3], tracks [T,H,W,4]).

    tracks is `pack_tracks` layout (x, y, visible, depth); `moaw_core.tracking.tracks.unpack_tracks` rebuilds
    DenseTracks. Clip i uses seed `seed * 1_000_003 + i`, so items are reproducible across workers.
    """

    def __init__(self, cfg: SynthConfig, length: int, seed: int = 0) -> None:
        if length < 1:
            raise ValueError(f"length: expected >= 1, got {length}")
        self.cfg, self.length, self.seed = cfg, length, seed
        self._bank = TextureBank(cfg.texture_dir) if cfg.texture_dir is not None else None

    def __len__(self) -> int:
        return self.length

    def clip_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index: expected 0 <= index < {self.length}, got {index}")
        clip = render_clip(self.clip_seed(index), self.cfg, textures=self._bank)
        return clip.video, pack_tracks(clip.tracks)
