"""Motion-channel selection from the motion-labelled dataset (MOFT's PCA recipe) and its small file.

`select_channels` renders opposite-motion clips (default: camera pan left vs pan right) with
`moaw_core.selection.motion_dataset`, gets each clip's feature grid at one block through a host-supplied
`features_fn(video) -> [1, T, H, W, C]` (the source noised to one sigma, one forward), takes the content-removed
per-frame series (spatial mean, or the direction-aware "signed" pooling: `features.POOLINGS`), and keeps the
channels with the largest |loading| on PC1 (`features.pca_channels`).

The result (`MoftChannels`) is saved as JSON next to the model, like `<model>.layers.json`:
`<model>.moft.json` (`channels_path`). It records the block, sigma, channels, their PC1 loadings, the model's
fingerprint and how well the channels separate the two motions (sign of the PC1 trend over frames).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from moaw_core.engine.adapters import check_compatible
from moaw_core.moft.features import check_pooling, moft_series, part_indices, pca_channels
from moaw_core.selection.motion_dataset import MOTION_CLASSES, MotionDatasetConfig, build_motion_dataset

FORMAT = "moaw_moft_channels/1"
SUFFIX = ".moft.json"


@dataclass(frozen=True)
class MoftChannels:
    """Chosen motion channels of one block of one model.

    layer, sigma: where and at which noise level the features were taken. channels: sorted indices.
    loadings: PC1 loading of each chosen channel's pooled features (same order; with "signed" pooling the x
    loadings of every channel, then the y loadings). fingerprint: the model's structure. pooling: the series'
    spatial pooling (`features.POOLINGS`); references built with these channels use it too.
    guidance: tuned guidance settings for this model (`MoftGuidanceConfig` keyword arguments, plus "mask": whether
    the source's foreground mask was used), empty when none were tuned; `guidance_config()` builds the config.
    classes: the two opposite motions. train_accuracy: fraction of the selection clips whose PC1 trend sign
    matches their class (orientation fixed on them). clips: clips per class used.
    """

    layer: str
    sigma: float
    channels: tuple[int, ...]
    loadings: tuple[float, ...]
    fingerprint: dict = field(default_factory=dict)
    classes: tuple[str, str] = ("pan_left", "pan_right")
    train_accuracy: float = float("nan")
    clips: int = 0
    pooling: str = "mean"
    guidance: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "loadings", tuple(float(v) for v in self.loadings))
        object.__setattr__(self, "classes", tuple(self.classes))
        parts = check_pooling(self.pooling)
        if not self.channels or len(self.loadings) != parts * len(self.channels):
            raise ValueError(f"MoftChannels: expected {parts} loading(s) per channel ({self.pooling} pooling) and "
                             f">= 1 channel, got {len(self.loadings)} loadings for {len(self.channels)} channels")

    def save(self, path) -> Path:
        """Write JSON atomically; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"format": FORMAT, **asdict(self)}, f, indent=1)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "MoftChannels":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MOFT channels file {path} not found (make it with MoftSelectChannels or "
                                    f"moaw_core.moft.select_channels)")
        data = json.loads(path.read_text())
        if data.pop("format", None) != FORMAT:
            raise ValueError(f"{path}: not a MOFT channels file (expected format {FORMAT!r})")
        return cls(**data)

    def guidance_config(self, mask: torch.Tensor | None = None, **overrides):
        """`MoftGuidanceConfig` from the stored `guidance` settings (defaults where none), `overrides` on top; `mask`
        is used only when the settings say so (or when no settings are stored)."""
        from moaw_core.moft.guidance import MoftGuidanceConfig

        g = dict(self.guidance)
        use_mask = g.pop("mask", True)
        return MoftGuidanceConfig(**{**g, **overrides, "mask": mask if use_mask else None})

    def check_model(self, model_fingerprint: dict) -> None:
        check_compatible(self.fingerprint, model_fingerprint, what="the MOFT channels")


def channels_path(model_path) -> Path:
    """`<model>.moft.json` next to a model file."""
    p = Path(model_path)
    return p.with_name(p.name[:-len(p.suffix)] + SUFFIX if p.suffix else p.name + SUFFIX)


def trend_scores(series: torch.Tensor, channels, loadings, parts: int = 1) -> torch.Tensor:
    """Per clip: covariance of the PC1 projection (chosen channels only) with the frame index. `[N]`.

    series `[N, T, P*C]` content-removed pooled series of all C channels (`parts` P per channel); opposite motions
    give opposite signs."""
    idx = torch.as_tensor(part_indices(channels, series.shape[-1] // parts, parts), dtype=torch.long)
    proj = series[..., idx].double() @ torch.as_tensor(loadings, dtype=torch.float64)
    t = torch.arange(series.shape[1], dtype=torch.float64)
    return (proj * (t - t.mean())).mean(dim=1)


def separation_accuracy(series: torch.Tensor, labels: torch.Tensor, chans: MoftChannels) -> float:
    """Fraction of clips (labels 0/1) whose trend sign matches their class, orientation as in `chans`
    (class 0 has a negative trend after `select_channels` orients the loadings)."""
    s = trend_scores(series, chans.channels, chans.loadings, check_pooling(chans.pooling))
    return float(((s > 0).long() == labels.long()).double().mean())


def dataset_series(features_fn: Callable[[torch.Tensor], torch.Tensor], videos: torch.Tensor,
                   progress: Callable[[int, int], None] | None = None, pooling: str = "mean") -> torch.Tensor:
    """`[N, T, P*C]` content-removed pooled series of each clip's features (all channels; `moft_series`)."""
    out = []
    for i, video in enumerate(videos):
        grid = features_fn(video)
        out.append(moft_series(grid, range(grid.shape[-1]), pooling=pooling)[0].detach().cpu())
        if progress is not None:
            progress(i + 1, len(videos))
    return torch.stack(out)


def select_channels(features_fn: Callable[[torch.Tensor], torch.Tensor], layer: str, sigma: float,
                    fingerprint: dict, k: int | None = None, fraction: float = 0.04,
                    classes: tuple[str, str] = ("pan_left", "pan_right"), clips: int = 8, frames: int = 8,
                    height: int = 64, width: int = 64, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None, pooling: str = "mean") -> MoftChannels:
    """PCA motion-channel selection on rendered opposite-motion clips.

    Args:
        features_fn: `video [T, H, W, 3] in [0, 1] -> [1, T', H', W', C]` token grid at `layer` (the host encodes
            the clip, noises it to `sigma` and runs one forward). fingerprint: the model's structure.
        k: channels to keep (default: `fraction` of C, at least 1). classes: two classes of MOTION_CLASSES.
        clips, frames, height, width, seed: the rendered clips (`MotionDatasetConfig`).
        pooling: "mean" (official) or "signed" (`features.moft_series`).
    Returns MoftChannels (loadings oriented so that classes[0] has a negative trend)."""
    if len(classes) != 2 or any(c not in MOTION_CLASSES for c in classes) or classes[0] == classes[1]:
        raise ValueError(f"classes: expected two distinct classes of {MOTION_CLASSES}, got {classes}")
    ds = build_motion_dataset(MotionDatasetConfig(classes=tuple(classes), clips_per_class=clips, frames=frames,
                                                  height=height, width=width, seed=seed))
    parts = check_pooling(pooling)
    series = dataset_series(features_fn, ds.videos, progress, pooling)
    n_ch = series.shape[-1] // parts
    k = int(k) if k else max(1, round(fraction * n_ch))
    channels, pc1 = pca_channels(series, k, parts)
    loadings = pc1[part_indices(channels, n_ch, parts)]
    if float(trend_scores(series[ds.labels == 0], channels, loadings, parts).mean()) > 0:
        loadings = -loadings
    chans = MoftChannels(layer, float(sigma), tuple(channels), tuple(loadings.tolist()), dict(fingerprint),
                         tuple(classes), float("nan"), int(clips), pooling)
    acc = separation_accuracy(series, ds.labels, chans)
    return MoftChannels(layer, float(sigma), tuple(channels), tuple(loadings.tolist()), dict(fingerprint),
                        tuple(classes), acc, int(clips), pooling)
