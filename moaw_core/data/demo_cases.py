"""The demo's motion-transfer cases: a source video whose motion is transferred, and the image to animate.

Two kinds (`CASES`), both rendered by the synthetic generator so nothing outside the repository is needed:
  camera  a camera motion (pan / tilt / zoom over a textured scene) transferred to a DIFFERENT image
          (frame 0 of another, static scene);
  object  an object's motion transferred onto a RESTYLED first frame of the source (colours rotated and
          contrast changed, same layout: the object is where the source's object starts).
`user_case` builds the same from a user's own video and image (any size and length: resampled in time and
resized to the model's clip size; what was done is returned as a note).
Scoring (`moaw_core.metrics.score_transfer`): object cases give the moving object's mask `fg_mask` [T, H, W]
(query points on its frame-0 pixels, as DMT uses the foreground; the moving region for the field agreement);
camera and user cases give none (query points where the source moves).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from moaw_core.data.sources import synthetic_source
from moaw_core.engine.i2v import resize_image

# name, kind, camera, object motion
CASES = (("pan_left", "camera", "pan_left", "none"), ("tilt_down", "camera", "tilt_down", "none"),
         ("zoom_in", "camera", "zoom_in", "none"), ("object_right", "object", "static", "right"),
         ("object_down", "object", "static", "down"), ("object_left", "object", "static", "left"))
KINDS = ("camera", "object", "user")
TARGET_SEED_OFFSET = 50_000  # camera cases: the target scene's seed = clip seed + this


@dataclass
class Case:
    """source [T,H,W,3] and image [H,W,3] in [0,1]; fg_mask: the source's moving object [T,H,W] bool or None
    (scoring); note: what was resized."""

    name: str
    kind: str
    source: torch.Tensor
    image: torch.Tensor
    fg_mask: np.ndarray | None = None
    note: str = ""


def restyle(image: torch.Tensor) -> torch.Tensor:
    """Same layout, new look: colour channels rotated (R,G,B -> G,B,R), contrast raised around mid-grey, gamma 0.8."""
    x = image[..., [1, 2, 0]]
    x = ((x - 0.5) * 1.3 + 0.5).clamp(0, 1)
    return x.pow(0.8)


def build_case(name: str, seed: int, frames: int = 8, size: int = 64, speed: float = 2.0) -> Case:
    """One of `CASES` with clip seed `seed` (the target scene of a camera case uses seed + TARGET_SEED_OFFSET)."""
    known = {c[0]: c for c in CASES}
    if name not in known:
        raise ValueError(f"case: expected one of {list(known)}, got {name!r}")
    _, kind, camera, objects = known[name]
    clip = synthetic_source(seed, frames=frames, height=size, width=size, camera=camera, objects=objects, speed=speed)
    if kind == "camera":
        image = synthetic_source(seed + TARGET_SEED_OFFSET, frames=1 if frames == 1 else 2, height=size, width=size,
                                 camera="static", objects="none").video[0]
        mask = None
    else:
        image = restyle(clip.video[0])
        fg = (clip.layer_index > 0).numpy()
        mask = fg if bool(fg[0].any()) else None
    return Case(name, kind, clip.video, image, mask)


def resample_video(video: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """[T,H,W,3] -> [frames,size,size,3]: frames picked evenly over the clip, each resized to cover and centre-cropped."""
    idx = np.linspace(0, video.shape[0] - 1, frames).round().astype(int)
    return torch.stack([resize_image(video[i], size, size) for i in idx])


def user_case(source: str, image: str, frames: int = 8, size: int = 64) -> Case:
    """A user's pair: source video (file or frame folder) and the image to animate, resampled to the model's size."""
    from PIL import Image

    from moaw_core.data.real import load_video

    try:
        img = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 255.0)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"image: no such file {image}") from e
    except OSError as e:
        raise ValueError(f"image: {image} is not a readable image ({e})") from e
    video = load_video(source)
    note = (f"source {video.shape[0]} frames {video.shape[2]}x{video.shape[1]} -> {frames} frames {size}x{size} "
            f"(evenly sampled, scaled to cover and centre-cropped); image {img.shape[1]}x{img.shape[0]} -> "
            f"{size}x{size}")
    return Case("user", "user", resample_video(video, frames, size), resize_image(img, size, size), None, note)
