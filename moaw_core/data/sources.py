"""Named synthetic source clips: a camera motion and/or an object motion by name, rendered with exact tracks.

Used by the demo (its source clips), by the `MoawSyntheticVideo` node (a test-pattern source that needs no
file), and by benchmarks. The motion names are those of the motion-labelled dataset.
"""
from __future__ import annotations

from moaw_core.data.synth import (CAMERA_MOTION_CLASSES, OBJECT_MOTION_CLASSES, CameraMotion, LayerMotion, SynthClip,
                             SynthConfig, render_clip)

CAMERA_CHOICES = ("random", "static", *CAMERA_MOTION_CLASSES)
OBJECT_CHOICES = ("random", "none", *OBJECT_MOTION_CLASSES)


def synthetic_source(seed: int, frames: int = 8, height: int = 64, width: int = 64, camera: str = "static",
                     objects: str = "right", speed: float = 2.0, num_objects: int = 1) -> SynthClip:
    """Render a source clip.

    Args:
        seed: scene seed (textures, shapes).
        frames, height, width: clip size in pixels.
        camera: "random", "static" or a camera-motion class ("pan_left", "zoom_in", ...).
        objects: "random", "none" or an object direction ("left", "right", "up", "down"), applied to
            `num_objects` foreground layers.
        speed: pixels per frame for pans and object motion.
    Returns:
        SynthClip (video [T, H, W, 3] in [0, 1], exact DenseTracks).
    """
    if camera not in CAMERA_CHOICES:
        raise ValueError(f"camera: expected one of {CAMERA_CHOICES}, got {camera!r}")
    if objects not in OBJECT_CHOICES:
        raise ValueError(f"objects: expected one of {OBJECT_CHOICES}, got {objects!r}")
    if speed < 0:
        raise ValueError(f"speed: expected >= 0 pixels per frame, got {speed}")
    if num_objects < 0:
        raise ValueError(f"num_objects: expected >= 0, got {num_objects}")
    cfg = SynthConfig(frames=frames, height=height, width=width)
    cam = None
    if camera == "static":
        cam = CameraMotion.static(frames)
    elif camera != "random":
        cam = CameraMotion.preset(camera, frames, speed=speed)
    if objects == "none" or num_objects == 0:
        return render_clip(seed, cfg, camera=cam, background_only=True)
    layers = None if objects == "random" else [LayerMotion.direction(objects, frames, speed=speed)
                                              for _ in range(num_objects)]
    return render_clip(seed, cfg, camera=cam, layers=layers)
