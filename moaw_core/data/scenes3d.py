"""Procedural 3-D scenes with exact dense tracks: perspective camera motion, parallax, rotating and
occluding objects, visibility by ray casting.

A scene is a set of primitives in world space (metres-like units, camera at the origin looking down +z at
frame 0, x right, y down): static infinite planes (a back wall, a floor, optional side walls) and rigid
objects (boxes and spheres) that translate and rotate about a random axis. The pinhole camera translates
and rotates (yaw, pitch, roll); its focal length follows a random field of view, so the same scene at a
higher resolution is the same picture, sharper.

- Rendering casts one ray per pixel (float64, vectorised) and keeps the nearest hit (the z-buffer): the
  pixel shows the hit primitive's texture at the hit's *local* surface coordinates (textures of
  `moaw_core.data.textures`, procedural or crops of real frames), so a surface point keeps its colour in
  every frame (no shading changes; photometric jitter is the trainer's `--photometric`).
- Tracks: the frame-0 hit of pixel p is a point fixed to its primitive (local coordinates); xy[t] is the
  projection of that point under the frame-t object and camera poses, depth its camera z. It is visible at
  t iff it lies in front of the camera, inside [0, W-1] x [0, H-1], and the ray through xy[t] hits nothing
  nearer (an exact z-buffer test at the sub-pixel position: occlusion by other objects and self-occlusion
  of a rotating object's far side both count).

Motion magnitudes are end-of-clip values (as `moaw_core.data.synth`), following a t^gamma profile; a
clip of 16 frames moves as far as one of 8, only more slowly; `motion_scale` scales every magnitude.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from moaw_core.data.synth import still_camera
from moaw_core.data.textures import Texture, TextureBank, random_texture, sample_texture
from moaw_core.tracking.tracks import DenseTracks, pack_tracks, pixel_grid

_F64 = torch.float64


@dataclass(frozen=True)
class Scene3DConfig:
    """Size and random ranges of the 3-D scenes (world units; the camera starts at the origin).

    camera_translation: end-of-clip max |x|, |y|, |z| travel; camera_rotation_deg: end-of-clip max yaw, pitch,
    roll. object_translation / object_rotation_deg: end-of-clip max per object. object_size: half extent of
    a box side / sphere radius. texture_scale: texture units (about pixels at 64 px) per world unit.
    still_camera: the probability that a scene's camera does not move (`synth.still_camera`; objects still do).
    """

    frames: int = 8
    height: int = 64
    width: int = 64
    fov_deg: tuple[float, float] = (50.0, 70.0)
    num_objects: tuple[int, int] = (1, 3)
    object_depth: tuple[float, float] = (3.5, 9.0)
    object_size: tuple[float, float] = (0.35, 0.9)
    sphere_prob: float = 0.35
    wall_depth: tuple[float, float] = (11.0, 15.0)
    floor_height: tuple[float, float] = (1.0, 2.0)
    side_wall_prob: float = 0.5
    camera_translation: tuple[float, float, float] = (0.8, 0.3, 1.0)
    camera_rotation_deg: tuple[float, float, float] = (8.0, 5.0, 4.0)
    object_translation: float = 0.8
    object_rotation_deg: float = 60.0
    motion_scale: float = 1.0
    texture_scale: float = 12.0
    texture_dir: str | None = None
    real_texture_prob: float = 0.5
    still_camera: float = 0.0

    def __post_init__(self) -> None:
        if min(self.frames, self.height, self.width) < 2:
            raise ValueError(f"Scene3DConfig: expected frames, height, width >= 2, got "
                             f"{(self.frames, self.height, self.width)}")
        if not 0.0 <= self.still_camera <= 1.0:
            raise ValueError(f"Scene3DConfig.still_camera: expected a probability in [0, 1], got {self.still_camera}")
        if not 0 <= self.num_objects[0] <= self.num_objects[1]:
            raise ValueError(f"Scene3DConfig.num_objects: expected 0 <= min <= max, got {self.num_objects}")
        if not 0 < self.fov_deg[0] <= self.fov_deg[1] < 180 or self.motion_scale < 0:
            raise ValueError(f"Scene3DConfig: fov_deg in (0, 180) increasing and motion_scale >= 0, got "
                             f"{self.fov_deg}, {self.motion_scale}")


@dataclass
class Primitive:
    """kind "plane" (local z = 0, infinite), "box" (half extents `size`) or "sphere" (radius size[0]).

    rotation [T,3,3] (local -> world, columns = local axes), center [T,3] world position; shade: per-face
    brightness (6 box faces, else 1 value), a property of the surface, so constant along a track."""

    kind: str
    size: tuple[float, float, float]
    rotation: torch.Tensor
    center: torch.Tensor
    texture: Texture
    shade: tuple[float, ...] = (1.0,)


@dataclass
class Scene3D:
    """Primitives, camera poses (rotation [T,3,3] camera -> world, origin [T,3]) and focal length in px."""

    primitives: list[Primitive]
    cam_rotation: torch.Tensor
    cam_origin: torch.Tensor
    focal: float
    texture_scale: float = 12.0

    @property
    def frames(self) -> int:
        return self.cam_rotation.shape[0]


@dataclass
class Scene3DClip:
    """video [T,H,W,3] in [0,1]; tracks (exact, depth = camera z); owner [T,H,W] int64 primitive per pixel."""

    video: torch.Tensor
    tracks: DenseTracks
    owner: torch.Tensor
    scene: Scene3D


# ----------------------------------------------------------------------------- geometry
def rotation_matrix(axis, angle) -> torch.Tensor:
    """Rodrigues: axis [3] (any length), angle [...] radians -> [...,3,3] float64."""
    k = torch.as_tensor(axis, dtype=_F64)
    k = k / k.norm().clamp_min(1e-12)
    a = torch.as_tensor(angle, dtype=_F64)[..., None, None]
    K = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=_F64)
    return torch.eye(3, dtype=_F64) + torch.sin(a) * K + (1 - torch.cos(a)) * (K @ K)


def _intersect(prim: Primitive, t: int, origin: torch.Tensor, dirs: torch.Tensor):
    """Ray (origin [3], dirs [N,3] world) vs primitive at frame t -> (s [N] (inf = miss), local [N,3], face [N])."""
    R, c = prim.rotation[t], prim.center[t]
    o, d = (origin - c) @ R, dirs @ R  # world -> local (R orthonormal)
    inf = torch.full(d.shape[:1], math.inf, dtype=_F64)
    face = torch.zeros(d.shape[:1], dtype=torch.long)
    if prim.kind == "plane":
        s = -o[2] / torch.where(d[:, 2].abs() > 1e-12, d[:, 2], torch.full_like(d[:, 2], 1e-12))
        s = torch.where(s > 1e-9, s, inf)
    elif prim.kind == "box":
        h = torch.tensor(prim.size, dtype=_F64)
        safe = torch.where(d.abs() > 1e-12, d, torch.full_like(d, 1e-12))
        t1, t2 = (-h - o) / safe, (h - o) / safe
        near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
        tmin, axis = near.max(-1)
        tmax = far.min(-1).values
        s = torch.where((tmax >= tmin) & (tmin > 1e-9), tmin, inf)
        sign = (torch.gather(d, 1, axis[:, None])[:, 0] < 0).long()  # entered through the +h face iff d < 0
        face = axis * 2 + sign
    else:
        r = prim.size[0]
        b = (o * d).sum(-1)
        a = (d * d).sum(-1)
        disc = b * b - a * ((o * o).sum() - r * r)
        s = (-b - torch.sqrt(disc.clamp_min(0))) / a
        s = torch.where((disc >= 0) & (s > 1e-9), s, inf)
    local = o + torch.where(torch.isfinite(s), s, torch.zeros_like(s))[:, None] * d
    return s, local, face


def _surface_uv(prim: Primitive, local: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """Local hit points [N,3] -> texture coordinates [N,2] (world units along the surface)."""
    if prim.kind == "plane":
        return local[:, :2]
    if prim.kind == "sphere":
        r = prim.size[0]
        lon = torch.atan2(local[:, 0], local[:, 2])
        lat = torch.asin((local[:, 1] / r).clamp(-1, 1))
        return torch.stack([r * lon, r * lat], -1)
    axis = face // 2
    others = torch.tensor([[1, 2], [0, 2], [0, 1]])[axis]
    uv = torch.gather(local, 1, others)
    return uv + 7.3 * face[:, None].to(_F64)  # each face its own patch of the texture


def camera_rays(scene: Scene3D, t: int, xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """World directions [N,3] (camera-z component 1, so the ray parameter is the camera depth) through xy [N,2]."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    xy = xy.to(_F64)
    d = torch.stack([(xy[:, 0] - cx) / scene.focal, (xy[:, 1] - cy) / scene.focal, torch.ones_like(xy[:, 0])], -1)
    return d @ scene.cam_rotation[t].T


def cast(scene: Scene3D, t: int, xy: torch.Tensor, height: int, width: int):
    """Nearest hit of the frame-t rays through xy [N,2] px.

    Returns:
        owner [N] int64 (primitive index, -1 = nothing), depth [N] float64 (camera z; inf = nothing),
        local [N,3] (hit in the owner's local coordinates), face [N] int64.
    """
    dirs = camera_rays(scene, t, xy, height, width)
    n = dirs.shape[0]
    depth = torch.full((n,), math.inf, dtype=_F64)
    owner = torch.full((n,), -1, dtype=torch.long)
    local = torch.zeros(n, 3, dtype=_F64)
    face = torch.zeros(n, dtype=torch.long)
    for k, prim in enumerate(scene.primitives):
        s, loc, f = _intersect(prim, t, scene.cam_origin[t], dirs)
        nearer = s < depth
        depth = torch.where(nearer, s, depth)
        owner = torch.where(nearer, torch.full_like(owner, k), owner)
        local = torch.where(nearer[:, None], loc, local)
        face = torch.where(nearer, f, face)
    return owner, depth, local, face


def shade_points(scene: Scene3D, owner: torch.Tensor, local: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """Colour [N,3] of surface points given by (owner, local, face) (black where owner == -1)."""
    out = torch.zeros(owner.shape[0], 3)
    for k, prim in enumerate(scene.primitives):
        sel = owner == k
        if not bool(sel.any()):
            continue
        uv = _surface_uv(prim, local[sel], face[sel]) * scene.texture_scale
        col = sample_texture(prim.texture, uv.float())
        shade = torch.tensor(prim.shade, dtype=torch.float32)[face[sel] if len(prim.shade) > 1 else 0]
        out[sel] = col * (shade[:, None] if shade.ndim else shade)
    return out


def project(scene: Scene3D, t: int, points: torch.Tensor, height: int, width: int):
    """World points [N,3] -> (xy [N,2] px float64, camera z [N]) at frame t."""
    pc = (points - scene.cam_origin[t]) @ scene.cam_rotation[t]
    z = pc[:, 2]
    zs = torch.where(z.abs() > 1e-9, z, torch.full_like(z, 1e-9))
    xy = torch.stack([scene.focal * pc[:, 0] / zs + (width - 1) / 2, scene.focal * pc[:, 1] / zs + (height - 1) / 2], -1)
    return xy, z


# ----------------------------------------------------------------------------- render
def render_scene(scene: Scene3D, height: int, width: int) -> Scene3DClip:
    """Render every frame and the exact first-frame-anchored tracks of `scene` at height x width."""
    if not isinstance(scene, Scene3D):
        raise TypeError(f"scene: expected Scene3D, got {type(scene).__name__}")
    if min(height, width) < 2:
        raise ValueError(f"height, width: expected >= 2, got {(height, width)}")
    T = scene.frames
    grid = pixel_grid(height, width, dtype=_F64).reshape(-1, 2)
    video, owners = [], []
    hit0 = None
    for t in range(T):
        owner, depth, local, face = cast(scene, t, grid, height, width)
        if t == 0:
            hit0 = (owner, local)
        video.append(shade_points(scene, owner, local, face).clamp(0, 1))
        owners.append(owner)
    tracks = scene_tracks(scene, hit0[0], hit0[1], height, width)
    return Scene3DClip(torch.stack(video).reshape(T, height, width, 3), tracks,
                       torch.stack(owners).reshape(T, height, width), scene)


def scene_tracks(scene: Scene3D, owner0: torch.Tensor, local0: torch.Tensor, height: int, width: int,
                 rel_tol: float = 1e-6) -> DenseTracks:
    """Tracks of the frame-0 surface points (owner0 [HW], local0 [HW,3]) through every frame."""
    T, n = scene.frames, owner0.shape[0]
    xy = torch.zeros(T, n, 2, dtype=_F64)
    z = torch.zeros(T, n, dtype=_F64)
    vis = torch.zeros(T, n, dtype=torch.bool)
    for t in range(T):
        world = torch.zeros(n, 3, dtype=_F64)
        for k, prim in enumerate(scene.primitives):
            sel = owner0 == k
            world[sel] = local0[sel] @ prim.rotation[t].T + prim.center[t]
        xy[t], z[t] = project(scene, t, world, height, width)
        inside = (z[t] > 1e-3) & (xy[t, :, 0] >= 0) & (xy[t, :, 0] <= width - 1) & (xy[t, :, 1] >= 0) \
            & (xy[t, :, 1] <= height - 1) & (owner0 >= 0)
        _, hit_depth, _, _ = cast(scene, t, xy[t], height, width)
        vis[t] = inside & (hit_depth >= z[t] * (1 - rel_tol) - 1e-9)
    xy[0] = pixel_grid(height, width, dtype=_F64).reshape(-1, 2)
    vis[0] = owner0 >= 0
    shape = (T, height, width)
    return DenseTracks(xy.float().reshape(*shape, 2), vis.reshape(shape), z.float().reshape(shape))


# ----------------------------------------------------------------------------- random scenes
def _profile(frames: int, g: torch.Generator) -> torch.Tensor:
    """[T] motion profile (t / (T-1))^gamma, gamma log-uniform in [0.6, 1.6]."""
    gamma = math.exp(math.log(0.6) + float(torch.rand((), generator=g, dtype=_F64)) * math.log(1.6 / 0.6))
    return (torch.arange(frames, dtype=_F64) / max(frames - 1, 1)) ** gamma


def _sym(g: torch.Generator, n: int) -> torch.Tensor:
    return 2 * torch.rand(n, generator=g, dtype=_F64) - 1


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=_F64))


def _random_rotation(g: torch.Generator) -> torch.Tensor:
    q = torch.randn(4, generator=g, dtype=_F64)
    w, x, y, z = (q / q.norm()).tolist()
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=_F64)


def _static(prim_kind: str, R: torch.Tensor, c, T: int, tex: Texture) -> Primitive:
    return Primitive(prim_kind, (0.0, 0.0, 0.0), R.expand(T, 3, 3).clone(),
                     torch.tensor(c, dtype=_F64).expand(T, 3).clone(), tex)


def _background(g: torch.Generator, cfg: Scene3DConfig, bank, T: int) -> list[Primitive]:
    """Back wall (z = D, yawed up to 25 deg), floor (y = h, tilted up to 6 deg), optional side walls."""
    tex = lambda: random_texture(g, bank, cfg.real_texture_prob)  # noqa: E731
    wall = _static("plane", rotation_matrix((0, 1, 0), math.radians(25) * float(_sym(g, 1))),
                   (0.0, 0.0, _uniform(g, *cfg.wall_depth)), T, tex())
    floor_r = rotation_matrix((1, 0, 0), math.pi / 2 + math.radians(6) * float(_sym(g, 1)))
    floor = _static("plane", floor_r, (0.0, _uniform(g, *cfg.floor_height), 0.0), T, tex())
    prims = [wall, floor]
    for side in (-1.0, 1.0):
        if float(torch.rand((), generator=g)) < cfg.side_wall_prob:
            r = rotation_matrix((0, 1, 0), math.pi / 2 + math.radians(15) * float(_sym(g, 1)))
            prims.append(_static("plane", r, (side * _uniform(g, 3.0, 6.0), 0.0, 0.0), T, tex()))
    return prims


def _random_object(g: torch.Generator, cfg: Scene3DConfig, bank, focal: float, prof: torch.Tensor) -> Primitive:
    T = len(prof)
    z = _uniform(g, *cfg.object_depth)
    half_w, half_h = 0.4 * cfg.width * z / focal, 0.4 * cfg.height * z / focal
    c0 = torch.tensor([half_w * float(_sym(g, 1)), half_h * float(_sym(g, 1)), z], dtype=_F64)
    size = tuple((_uniform(g, *cfg.object_size) for _ in range(3)))
    sphere = float(torch.rand((), generator=g)) < cfg.sphere_prob
    move = _sym(g, 3) * cfg.object_translation * cfg.motion_scale
    axis = torch.randn(3, generator=g, dtype=_F64)
    angle = math.radians(cfg.object_rotation_deg) * cfg.motion_scale * float(_sym(g, 1))
    R0 = _random_rotation(g)
    shade = tuple(_uniform(g, 0.6, 1.0) for _ in range(6))
    tex = random_texture(g, bank, cfg.real_texture_prob)
    rot = rotation_matrix(axis, angle * prof) @ R0
    center = c0 + prof[:, None] * move
    if sphere:
        return Primitive("sphere", (size[0],) * 3, rot, center, tex)
    return Primitive("box", size, rot, center, tex, shade)


def random_scene(seed: int, cfg: Scene3DConfig = Scene3DConfig(), bank: TextureBank | None = None) -> Scene3D:
    """The random scene and motion of `seed` (deterministic)."""
    if not isinstance(cfg, Scene3DConfig):
        raise TypeError(f"cfg: expected Scene3DConfig, got {type(cfg).__name__}")
    if bank is None and cfg.texture_dir is not None:
        bank = TextureBank(cfg.texture_dir)
    g = torch.Generator().manual_seed(int(seed) ^ 0x3D5CE9E)
    T = cfg.frames
    fov = math.radians(_uniform(g, *cfg.fov_deg))
    focal = 0.5 * cfg.width / math.tan(fov / 2)
    prims = _background(g, cfg, bank, T)
    n_obj = int(torch.randint(cfg.num_objects[0], cfg.num_objects[1] + 1, (), generator=g))
    prims += [_random_object(g, cfg, bank, focal, _profile(T, g)) for _ in range(n_obj)]
    prof = _profile(T, g)
    move = _sym(g, 3) * torch.tensor(cfg.camera_translation, dtype=_F64) * cfg.motion_scale
    yaw, pitch, roll = (_sym(g, 3) * torch.tensor(cfg.camera_rotation_deg, dtype=_F64) * cfg.motion_scale).tolist()
    if still_camera(seed, cfg.still_camera):  # the objects keep their motion
        move, yaw, pitch, roll = move * 0.0, 0.0, 0.0, 0.0
    cam_r = (rotation_matrix((0, 1, 0), math.radians(yaw) * prof) @ rotation_matrix((1, 0, 0), math.radians(pitch) * prof)
             @ rotation_matrix((0, 0, 1), math.radians(roll) * prof))
    return Scene3D(prims, cam_r, prof[:, None] * move, focal, cfg.texture_scale)


class Scenes3DDataset(torch.utils.data.Dataset):
    """Map-style dataset of random 3-D scenes: item i -> (video [T,H,W,3], tracks [T,H,W,4] `pack_tracks`
    layout), as `moaw_core.data.synth.SynthDataset`. Clip i uses seed `seed * 1_000_003 + i`."""

    def __init__(self, cfg: Scene3DConfig, length: int, seed: int = 0) -> None:
        if not isinstance(cfg, Scene3DConfig):
            raise TypeError(f"cfg: expected Scene3DConfig, got {type(cfg).__name__}")
        if length < 1:
            raise ValueError(f"length: expected >= 1, got {length}")
        self.cfg, self.length, self.seed = cfg, length, seed
        self._bank = TextureBank(cfg.texture_dir) if cfg.texture_dir is not None else None

    def __len__(self) -> int:
        return self.length

    def clip_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index

    def clip(self, index: int) -> Scene3DClip:
        if not 0 <= index < self.length:
            raise IndexError(f"index: expected 0 <= index < {self.length}, got {index}")
        scene = random_scene(self.clip_seed(index), self.cfg, self._bank)
        return render_scene(scene, self.cfg.height, self.cfg.width)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clip(index)
        return clip.video, pack_tracks(clip.tracks)
