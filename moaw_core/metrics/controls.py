"""Control videos for the motion metrics: what a scorer must rate low (a still first frame, the source played
backwards, uniform noise) and a same-motion / other-appearance variant it must rate high.

Used by the control tests (tests/unit/test_metric_controls.py) and by the demo and bench reports, which score
these controls beside the real generations. Videos are [T, H, W, 3] float RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np

from moaw_core.metrics import _arrays

CONTROLS = ("frozen", "reversed", "noise")


def frozen(video) -> np.ndarray:
    """The first frame repeated: no motion at all."""
    v = _arrays.video(video, "video")
    return np.repeat(v[:1], v.shape[0], axis=0)


def reversed_time(video) -> np.ndarray:
    """The video played backwards."""
    return np.ascontiguousarray(_arrays.video(video, "video")[::-1])


def uniform_noise(video, seed: int = 0) -> np.ndarray:
    """I.i.d. uniform noise of the video's shape (seeded)."""
    v = _arrays.video(video, "video")
    return np.random.default_rng(seed).random(v.shape, dtype=np.float32)


def recolour(video) -> np.ndarray:
    """Same motion, other appearance: channels rotated (RGB -> GBR), inverted and gamma 0.6, so every pixel's
    colour and the luminance contrast change while the geometry stays the same."""
    v = _arrays.video(video, "video")
    return np.ascontiguousarray((1.0 - v[..., [1, 2, 0]]) ** 0.6, dtype=np.float32)


def control_videos(video, seed: int = 0) -> dict[str, np.ndarray]:
    """{"frozen", "reversed", "noise"} controls of a source video; each should score low against it."""
    return {"frozen": frozen(video), "reversed": reversed_time(video), "noise": uniform_noise(video, seed)}
