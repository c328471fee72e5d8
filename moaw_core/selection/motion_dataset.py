"""The motion-labelled dataset of Moaw stage 2: rendered clips whose motion class is exact by construction.

Classes (`MOTION_CLASSES`):
- camera: the six camera motions of the paper (pan left/right, tilt up/down, zoom in/out) over a static scene
  (background layer only, procedural textures or crops of real frames from `texture_dir`);
- object: one textured foreground layer moving left/right/up/down over a static background, static camera.

Matched design: clip k of every class uses the same scene seed and the same speed, so within a clip index the
classes differ only in their motion (content cannot explain class separation). Across clip indices the scene
and the speed (`speed * (1 ± speed_jitter)`) vary. Rendering is `moaw_core.data.synth.render_clip`; the same config
and seed give bit-identical videos.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from moaw_core.data.synth import (CAMERA_MOTION_CLASSES, OBJECT_MOTION_CLASSES, CameraMotion, LayerMotion, SynthConfig,
                             TextureBank, render_clip)

OBJECT_CLASSES = tuple(f"object_{d}" for d in OBJECT_MOTION_CLASSES)
MOTION_CLASSES = CAMERA_MOTION_CLASSES + OBJECT_CLASSES
GROUPS = {"all": MOTION_CLASSES, "camera": CAMERA_MOTION_CLASSES, "object": OBJECT_CLASSES}
_DIRS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def group_of(name: str) -> str:
    """"camera" or "object" for a class name of MOTION_CLASSES."""
    if name in CAMERA_MOTION_CLASSES:
        return "camera"
    if name in OBJECT_CLASSES:
        return "object"
    raise ValueError(f"class name: expected one of {MOTION_CLASSES}, got {name!r}")


@dataclass(frozen=True)
class MotionDatasetConfig:
    """What to render.

    classes: class names (subset of MOTION_CLASSES) or a group name "all" | "camera" | "object".
    clips_per_class: clips of each class (>= 2: the linear probe is cross-validated).
    frames, height, width: clip size in pixels.
    speed: pan / tilt / object speed in px per frame; zooms move the border midpoints by about `speed` px per
        frame (zoom factor per frame 1 + 2 speed / min(H, W)) unless `zoom_rate` is given.
    speed_jitter: clip k's speed is speed * (1 + speed_jitter * u_k), u_k uniform in [-1, 1] (seeded).
    object_size: foreground radius range as a fraction of min(H, W).
    texture_dir: folder of videos / images whose crops texture a layer with probability `real_texture_prob`.
    seed: scene and jitter seed.
    """

    classes: tuple[str, ...] | str = "all"
    clips_per_class: int = 8
    frames: int = 8
    height: int = 64
    width: int = 64
    speed: float = 2.0
    speed_jitter: float = 0.25
    zoom_rate: float | None = None
    object_size: tuple[float, float] = (0.18, 0.3)
    texture_dir: str | None = None
    real_texture_prob: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.classes, str):
            object.__setattr__(self, "classes", tuple(self.classes))
        if isinstance(self.classes, str) and self.classes not in GROUPS:
            raise ValueError(f"classes: expected a group {tuple(GROUPS)} or class names, got {self.classes!r}")
        names = self.class_names
        for name in names:
            group_of(name)
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"classes: expected at least 2 distinct motion classes, got {list(names)}")
        if int(self.clips_per_class) < 2:
            raise ValueError(f"clips_per_class: expected >= 2 (cross-validated probe), got {self.clips_per_class}")
        if min(self.frames, self.height, self.width) < 2:
            raise ValueError(f"frames/height/width: expected >= 2, got {(self.frames, self.height, self.width)}")
        if not self.speed > 0 or not 0 <= self.speed_jitter < 1:
            raise ValueError(f"speed / speed_jitter: expected > 0 and in [0, 1), got {self.speed}, "
                             f"{self.speed_jitter}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return GROUPS[self.classes] if isinstance(self.classes, str) else tuple(self.classes)

    def clip_speed(self, k: int) -> float:
        u = np.random.default_rng([int(self.seed), 7]).uniform(-1.0, 1.0, size=int(self.clips_per_class))
        return float(self.speed * (1.0 + self.speed_jitter * u[k]))

    def scene_seed(self, k: int) -> int:
        return int(self.seed) * 1_000_003 + int(k)


@dataclass
class MotionDataset:
    """Rendered clips with exact motion labels, class-major order (all clips of class 0 first).

    Attributes:
        videos: [N, T, H, W, 3] float32 in [0, 1].
        labels: [N] int64 class indices into `class_names`.
        class_names: motion class of each label index.
        groups: "camera" or "object" for each class (aligned with class_names).
        config: the MotionDatasetConfig that rendered it (None for user-built datasets).
        scenes: optional [N] scene index of each clip (the same scene is rendered under every class); the
            probe's folds keep a scene together so it must recognise motion, not scenes.
    """

    videos: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    groups: tuple[str, ...] = ()
    config: MotionDatasetConfig | None = field(default=None, repr=False)
    scenes: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        v, y = self.videos, self.labels
        if self.scenes is not None and (not isinstance(self.scenes, torch.Tensor) or self.scenes.shape != y.shape):
            raise ValueError(f"scenes: expected [{len(y)}] scene ids, got {getattr(self.scenes, 'shape', self.scenes)}")
        if not isinstance(v, torch.Tensor) or v.ndim != 5 or v.shape[-1] != 3:
            raise ValueError(f"videos: expected [N, T, H, W, 3], got {getattr(v, 'shape', type(v).__name__)}")
        if v.shape[0] == 0:
            raise ValueError("videos: empty dataset (N = 0 clips)")
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.shape[0] != v.shape[0]:
            raise ValueError(f"labels: expected [{v.shape[0]}] (one per clip), got "
                             f"{getattr(y, 'shape', type(y).__name__)}")
        self.class_names = tuple(self.class_names)
        self.groups = tuple(self.groups) or tuple(group_of(n) if n in MOTION_CLASSES else "" for n in
                                                  self.class_names)
        if len(self.groups) != len(self.class_names):
            raise ValueError(f"groups: expected one per class ({len(self.class_names)}), got {len(self.groups)}")
        if int(y.min()) < 0 or int(y.max()) >= len(self.class_names):
            raise ValueError(f"labels: expected values in [0, {len(self.class_names)}), got [{int(y.min())}, "
                             f"{int(y.max())}]")

    def __len__(self) -> int:
        return int(self.videos.shape[0])

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))

    def select(self, group: str) -> "MotionDataset":
        """The clips of one group ("camera" | "object"), labels re-indexed to that group's classes."""
        keep = [i for i, g in enumerate(self.groups) if g == group]
        if not keep:
            raise ValueError(f"group: expected one of {sorted(set(self.groups))}, got {group!r}")
        remap = torch.full((len(self.class_names),), -1, dtype=torch.long)
        remap[keep] = torch.arange(len(keep))
        mask = remap[self.labels] >= 0
        return MotionDataset(self.videos[mask], remap[self.labels[mask]], tuple(self.class_names[i] for i in keep),
                             tuple(self.groups[i] for i in keep), self.config,
                             None if self.scenes is None else self.scenes[mask])


def _render(cfg: MotionDatasetConfig, synth: SynthConfig, name: str, k: int, bank) -> torch.Tensor:
    T, H, W = cfg.frames, cfg.height, cfg.width
    speed = cfg.clip_speed(k)
    if group_of(name) == "camera":
        zoom = cfg.zoom_rate or 1.0 + 2.0 * speed / min(H, W)
        camera = CameraMotion.preset(name, T, speed=speed, zoom_rate=zoom)
        return render_clip(cfg.scene_seed(k), synth, camera=camera, background_only=True, textures=bank).video
    # The object starts half its path before the frame centre (plus a seeded offset) so it stays in view.
    dx, dy = _DIRS[name[len("object_"):]]
    off = np.random.default_rng([int(cfg.seed), 11, k]).uniform(-0.12, 0.12, size=2)
    path = speed * (T - 1) / 2
    center = (W / 2 - dx * path + off[0] * W, H / 2 - dy * path + off[1] * H)
    motion = LayerMotion.direction(name[len("object_"):], T, speed=speed, center=center)
    return render_clip(cfg.scene_seed(k), synth, camera=CameraMotion.static(T), layers=[motion],
                       textures=bank).video


def build_motion_dataset(config: MotionDatasetConfig = MotionDatasetConfig(),
                         progress: Callable[[int, int], None] | None = None) -> MotionDataset:
    """Render the motion-labelled dataset.

    Args:
        config: MotionDatasetConfig. progress: optional `progress(done, total)` after each clip.
    Returns:
        MotionDataset with N = len(classes) * clips_per_class clips, videos [N, T, H, W, 3].
    """
    if not isinstance(config, MotionDatasetConfig):
        raise TypeError(f"config: expected MotionDatasetConfig, got {type(config).__name__}")
    names = config.class_names
    synth = SynthConfig(frames=config.frames, height=config.height, width=config.width,
                        layer_size=tuple(config.object_size), texture_dir=config.texture_dir,
                        real_texture_prob=config.real_texture_prob)
    bank = TextureBank(config.texture_dir) if config.texture_dir is not None else None
    n = len(names) * config.clips_per_class
    videos = torch.empty(n, config.frames, config.height, config.width, 3)
    labels = torch.empty(n, dtype=torch.long)
    scenes = torch.empty(n, dtype=torch.long)
    i = 0
    for c, name in enumerate(names):
        for k in range(config.clips_per_class):
            videos[i] = _render(config, synth, name, k, bank)
            labels[i] = c
            scenes[i] = k
            i += 1
            if progress is not None:
                progress(i, n)
    return MotionDataset(videos, labels, names, tuple(group_of(n) for n in names), config, scenes)
