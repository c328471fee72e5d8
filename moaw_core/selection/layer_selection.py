"""Per-layer motion scores (Moaw stage 2): which (block, denoising step) features separate motion classes.

A *feature source* is any callable `source(latents [B,C,T,H,W], layers, seed) -> MotionFeatures` with a
`layers` attribute (every capturable layer name, model order). Provided here: `GeneratorSource` (diffusers
generator, training-free: noised latents, one pass per noise level) and `TrackerSource` (diffusers Moaw
tracker: its own few-step sampling, source latents concatenated at the input); `nodes/score.py` wraps
ComfyUI's `capture_comfy` the same way.

`score_layers` streams: each clip is captured, every (layer, step) tensor is pooled at once
(`scoring.pool_features`, time kept) and the raw capture dropped, so only [N, D] pooled rows are held. With
`layers_per_pass` the layers are captured in chunks (the model runs once per chunk and clip) so the raw capture
and the pooled rows of one chunk bound the peak memory. Each (layer, step) is then scored with
`scoring.score_table` (Fisher ratio and silhouette of the top PCA components, k-fold linear-probe accuracy).
The result is a `LayerScores` (ranked rows, JSON file, heat map). The CLI verb `score` is `moaw_core.cli.score`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

from moaw_core.engine.adapters import detect
from moaw_core.engine.capture import capture_training_free
from moaw_core.engine.features import MotionFeatures
from moaw_core.selection.motion_dataset import MotionDataset, MotionDatasetConfig, build_motion_dataset
from moaw_core.engine.schedule import flow_sigmas, shift_sigma
from moaw_core.selection.scoring import SCORES, pool_features, rank_key, score_table, top_k

FORMAT = "moaw.layer_scores.v1"


class FeatureSource(Protocol):
    """`layers`: all capturable layer names. Call: latents (the source's input space) -> MotionFeatures."""

    layers: tuple[str, ...]

    def __call__(self, latents: torch.Tensor, layers: Sequence[str], seed: int) -> MotionFeatures: ...


def training_free_sigmas(steps: int, shift: float = 1.0) -> list[float]:
    """`steps` capture noise levels evenly spaced strictly between 1 and 0 (shifted): 3 -> [.75, .5, .25]. Noise
    levels to noise a clean latent to, not a sampling schedule (that is `schedule.flow_sigmas`)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected an int >= 1, got {steps!r}")
    return [float(s) for s in shift_sigma(torch.linspace(1.0, 0.0, steps + 2), shift)[1:-1]]


class GeneratorSource:
    """Training-free features of a diffusers generator (`capture_training_free` at `sigmas`).

    forward_kwargs: the condition of the cond pass; None = the null (all-zero) condition of Wan / SVD /
    CogVideoX models (`moaw_core.tracking.tracker.null_condition`). Latents come in `[B, C, T, H, W]` and are
    transposed for families that take `[B, T, C, H, W]` (SVD, CogVideoX).
    """

    def __init__(self, model: torch.nn.Module, sigmas, forward_kwargs: dict | None = None,
                 dtype: torch.dtype = torch.float16):
        adapter = detect(model)
        self.model, self.sigmas, self.forward_kwargs, self.dtype = model, list(sigmas), forward_kwargs, dtype
        self.family = adapter.fingerprint(model).get("family", "")
        self.layers = tuple(layer.name for layer in adapter.layers(model))
        self.name = f"{adapter.name} training-free"

    def __call__(self, latents: torch.Tensor, layers: Sequence[str], seed: int) -> MotionFeatures:
        from moaw_core.tracking.tracker import null_condition

        cin = getattr(self.model.config, "in_channels", None)
        if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or (cin and latents.shape[1] != cin):
            raise ValueError(f"latents: expected [B, {cin}, T, H, W] for {type(self.model).__name__}, got "
                             f"{getattr(latents, 'shape', type(latents).__name__)} (codec/VAE and model mismatch?)")
        x = latents.transpose(1, 2) if self.family in ("svd", "cogvideox") else latents
        kwargs = self.forward_kwargs
        if kwargs is None:
            p = next(self.model.parameters())
            try:
                kwargs = null_condition(self.model, x.shape[0], p.device, p.dtype)
            except TypeError as err:
                raise ValueError(f"GeneratorSource: no null condition for {type(self.model).__name__}; pass "
                                 f"forward_kwargs") from err
        return capture_training_free(self.model, x, self.sigmas, layers, kwargs, seed=seed, dtype=self.dtype,
                                     source=self.name)


class TrackerSource:
    """Features of a diffusers `MoawTracker` while it samples tracks (`steps` Euler steps, flow schedule), through
    the one tracker-feature path (`moaw_core.engine.transfer.extract_tracker_features`; the demo, bench and transfer
    verbs use it too). init_noise: the start the tracker was trained for, as its file records it ("zeros" for
    one-step regression trackers; `checkpoint.sampling_defaults`): required, because a wrong start silently
    changes every feature. `from_file` reads all three settings from a tracker file, as the node does."""

    def __init__(self, tracker, steps: int = 1, shift: float = 1.0, dtype: torch.dtype = torch.float16, *,
                 init_noise: str):
        if init_noise not in ("gaussian", "zeros"):
            raise ValueError(f"TrackerSource: init_noise must be 'gaussian' or 'zeros', got {init_noise!r}")
        self.tracker, self.dtype, self.init_noise = tracker, dtype, init_noise
        self.steps, self.shift = int(steps), float(shift)
        self.sigmas = [float(s) for s in flow_sigmas(int(steps), shift)]
        self.layers = tuple(layer.name for layer in detect(tracker.backbone).layers(tracker.backbone))
        self.name = f"tracker {steps}-step sampling"

    @classmethod
    def from_file(cls, path, steps: int | None = None, shift: float | None = None,
                  dtype: torch.dtype = torch.float16) -> "TrackerSource":
        """A tracker file with its recorded schedule (`steps`, `shift` override it; the start never changes)."""
        from moaw_core.engine.checkpoint import load_tracker, sampling_defaults

        tracker, _, meta = load_tracker(path)
        s = sampling_defaults(meta, steps)
        return cls(tracker, s["steps"], s["shift"] if shift is None else shift, dtype, init_noise=s["init_noise"])

    def __call__(self, latents: torch.Tensor, layers: Sequence[str], seed: int) -> MotionFeatures:
        from moaw_core.engine.transfer import extract_tracker_features

        feats, _ = extract_tracker_features(self.tracker, latents, list(layers), self.steps, self.shift, seed=seed,
                                            dtype=self.dtype, source=self.name, init_noise=self.init_noise)
        return feats


@dataclass(frozen=True)
class ScoreConfig:
    """pool / grid / remove_content: `scoring.pool_features` (grid 2 keeps the quadrant layout a zoom needs).
    n_components, folds, seed: the scores (folds is capped by the smallest class). by: ranking score.
    layers_per_pass: layers captured per model pass (0 = all at once)."""

    pool: str = "mean"
    grid: int = 2
    remove_content: bool = True
    n_components: int = 8
    folds: int = 5
    seed: int = 0
    by: str = "probe"
    layers_per_pass: int = 0

    def __post_init__(self) -> None:
        if self.by not in SCORES:
            raise ValueError(f"by: expected one of {SCORES}, got {self.by!r}")
        if int(self.layers_per_pass) < 0:
            raise ValueError(f"layers_per_pass: expected >= 0 (0 = all), got {self.layers_per_pass}")


@dataclass
class LayerScores:
    """Ranked (layer, step) motion scores.

    rows: dicts {layer, step, fisher, silhouette, probe}, best first by `by`. layers: every scored layer in
    model order. steps / sigmas: captured step indices and their noise levels. chance: probe accuracy of
    guessing (1 / classes). meta: source, dataset and score configs, timings, memory.
    """

    rows: list[dict]
    layers: tuple[str, ...]
    steps: tuple[int, ...]
    sigmas: tuple[float, ...] = ()
    by: str = "probe"
    class_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers, self.steps = tuple(self.layers), tuple(int(s) for s in self.steps)
        self.sigmas, self.class_names = tuple(float(s) for s in self.sigmas), tuple(self.class_names)
        if self.by not in SCORES:
            raise ValueError(f"by: expected one of {SCORES}, got {self.by!r}")
        if not self.rows:
            raise ValueError("LayerScores: no rows (nothing was scored)")
        for r in self.rows:
            if not set(SCORES) | {"layer", "step"} <= set(r) or r["layer"] not in self.layers:
                raise ValueError(f"LayerScores: bad row {r} (layers {list(self.layers)})")
        self.rows = sorted(self.rows, key=rank_key(self.by))

    @property
    def chance(self) -> float:
        return 1.0 / len(self.class_names) if self.class_names else float("nan")

    def top_k(self, k: int, by: str | None = None) -> list[str]:
        """The k best distinct layers (each ranked by its best step) under `by` (default: self.by)."""
        return top_k(self.rows, k, by or self.by)

    def grid(self, score: str) -> np.ndarray:
        """[len(layers), len(steps)] float64 of `score` (NaN where a pair was not scored)."""
        if score not in SCORES:
            raise ValueError(f"score: expected one of {SCORES}, got {score!r}")
        out = np.full((len(self.layers), len(self.steps)), np.nan)
        li, si = {n: i for i, n in enumerate(self.layers)}, {s: i for i, s in enumerate(self.steps)}
        for r in self.rows:
            out[li[r["layer"]], si[int(r["step"])]] = r[score]
        return out

    def to_json(self) -> str:
        """JSON text (strict: an infinite Fisher ratio is written as the string "inf")."""
        rows = [{k: ("inf" if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()} for r in self.rows]
        return json.dumps({"format": FORMAT, "by": self.by, "rows": rows, "layers": list(self.layers),
                           "steps": list(self.steps), "sigmas": list(self.sigmas),
                           "class_names": list(self.class_names), "chance": self.chance,
                           "top_k": self.top_k(min(4, len(self.layers))), "meta": self.meta},
                          indent=1, allow_nan=False, default=str)

    @classmethod
    def from_json(cls, text: str) -> "LayerScores":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"LayerScores.from_json: not JSON ({err})") from err
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"LayerScores.from_json: expected format {FORMAT!r}, got {got!r}")
        rows = [{k: (math.inf if v == "inf" else v) for k, v in r.items()} for r in d["rows"]]
        return cls(rows, d["layers"], d["steps"], d.get("sigmas", ()), d["by"], d.get("class_names", ()),
                   d.get("meta", {}))

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path) -> "LayerScores":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"LayerScores.load: no such file {path}")
        try:
            return cls.from_json(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    def heatmap(self, backend: str = "auto") -> np.ndarray:
        """Heat map image [H, W, 3] uint8: one panel per score, layers down, steps across."""
        from moaw_core.selection.heatmap import render_heatmap

        return render_heatmap(self, backend)

    def heatmap_tensor(self, backend: str = "auto") -> torch.Tensor:
        """The heat map as a ComfyUI IMAGE batch [1, H, W, 3] float32 in [0, 1]."""
        return torch.from_numpy(self.heatmap(backend)).float().div(255.0)[None]

    def save_heatmap(self, path, backend: str = "auto") -> Path:
        import cv2

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), self.heatmap(backend)[..., ::-1]):
            raise ValueError(f"save_heatmap: could not write {path}")
        return path


# ----------------------------------------------------------------------------- scoring loop
def _check_features(feats, chunk: Sequence[str], clip: int, first) -> tuple:
    """Validate one clip's capture against the requested layers and the first clip's steps."""
    if not isinstance(feats, MotionFeatures):
        raise TypeError(f"feature source: expected MotionFeatures, got {type(feats).__name__} (clip {clip})")
    missing = [n for n in chunk if n not in feats.layers]
    if missing:
        raise ValueError(f"feature source: requested layers {missing} missing from its capture of clip {clip} "
                         f"(it returned {list(feats.layers)}): the source and the layer names do not match")
    sig = (feats.steps, tuple(feats.sigmas[s] for s in feats.steps))
    if first is not None and sig[0] != first[0]:
        raise ValueError(f"feature source: clip {clip} captured steps {list(sig[0])}, clip 0 {list(first[0])}")
    return sig


def _layer_selection(source, layers) -> tuple[str, ...]:
    known = tuple(getattr(source, "layers", ()))
    if not known:
        raise ValueError("source: expected a feature source with a non-empty `layers` attribute")
    if layers is None:
        return known
    layers = tuple([layers] if isinstance(layers, str) else layers)
    unknown = [n for n in layers if n not in known]
    if not layers or unknown:
        raise ValueError(f"layers: expected a non-empty subset of the model's layers {list(known)}, got "
                         f"{list(layers)} (unknown: {unknown})")
    return tuple(n for n in known if n in layers)


def _encode_all(dataset: MotionDataset, encode) -> list[torch.Tensor]:
    out = []
    for i in range(len(dataset)):
        z = encode(dataset.videos[i])
        if not isinstance(z, torch.Tensor) or z.ndim != 5 or z.shape[0] != 1:
            raise ValueError(f"encode: expected a latent [1, C, T, H, W] per clip, got "
                             f"{getattr(z, 'shape', type(z).__name__)} for clip {i}")
        out.append(z)
    return out


def score_layers(source: FeatureSource, dataset: MotionDataset, encode: Callable[[torch.Tensor], torch.Tensor],
                 layers: Sequence[str] | None = None, config: ScoreConfig = ScoreConfig(),
                 progress: Callable[[int, int], None] | None = None) -> LayerScores:
    """Capture, pool and score every (layer, step) of `source` on `dataset`.

    Args:
        source: a FeatureSource. dataset: MotionDataset (>= 2 classes, >= 2 clips per class).
        encode: video [T, H, W, 3] -> latents [1, C, T', H', W'] in the source's input space.
        layers: subset of `source.layers` (None = all). config: ScoreConfig.
        progress: `progress(done, total)` after each captured clip (may raise to cancel).
    Returns:
        LayerScores ranked by `config.by`; meta holds timings (s) and memory (bytes) figures.
    """
    if not isinstance(dataset, MotionDataset):
        raise TypeError(f"dataset: expected MotionDataset, got {type(dataset).__name__}")
    counts = torch.bincount(dataset.labels, minlength=len(dataset.class_names))
    present = int((counts > 0).sum())
    if present < 2 or int(counts[counts > 0].min()) < 2:
        raise ValueError(f"dataset: expected >= 2 classes with >= 2 clips each, got {dataset.class_counts()}")
    layers = _layer_selection(source, layers)
    per = int(config.layers_per_pass) or len(layers)
    chunks = [layers[i:i + per] for i in range(0, len(layers), per)]
    y = dataset.labels.numpy()
    folds = max(2, min(int(config.folds), int(counts[counts > 0].min())))
    scenes = None if getattr(dataset, "scenes", None) is None else dataset.scenes.numpy()
    if scenes is not None:
        folds = min(folds, len(np.unique(scenes)))
    t0 = time.perf_counter()
    latents = _encode_all(dataset, encode)
    times = {"encode": time.perf_counter() - t0, "capture": 0.0, "score": 0.0}
    mem = {"max_capture_bytes": 0, "max_pooled_bytes": 0, "latents_bytes": sum(z.nbytes for z in latents)}
    rows, first, done, total = [], None, 0, len(chunks) * len(latents)
    for chunk in chunks:
        pooled: dict[tuple[str, int], np.ndarray] = {}
        t1 = time.perf_counter()
        for i, z in enumerate(latents):
            feats = source(z, chunk, int(config.seed) + i)
            first = _check_features(feats, chunk, i, first)
            mem["max_capture_bytes"] = max(mem["max_capture_bytes"], feats.nbytes)
            for (name, step), t in feats.tensors.items():
                if name not in chunk:
                    continue
                v = pool_features(t[:1], config.pool, config.remove_content, config.grid)[0].numpy()
                if not np.isfinite(v).all():
                    raise ValueError(f"features of layer {name!r} step {step} are NaN/inf for clip {i}")
                arr = pooled.setdefault((name, step), np.empty((len(latents), v.shape[0]), np.float32))
                arr[i] = v
            del feats
            done += 1
            if progress is not None:
                progress(done, total)
        mem["max_pooled_bytes"] = max(mem["max_pooled_bytes"], sum(a.nbytes for a in pooled.values()))
        t2 = time.perf_counter()
        rows += score_table(pooled, y, config.n_components, folds, config.seed, config.by, groups=scenes)
        times["capture"] += t2 - t1
        times["score"] += time.perf_counter() - t2
    meta = {"source": getattr(source, "name", type(source).__name__), "clips": len(latents),
            "latent_shape": list(latents[0].shape), "score_config": asdict(config), "folds": folds,
            "passes": len(chunks), "seconds": {k: round(v, 3) for k, v in times.items()}, "memory": mem}
    if dataset.config is not None:
        meta["dataset"] = asdict(dataset.config)
    steps, sigmas = first
    return LayerScores(rows, layers, steps, sigmas, config.by, dataset.class_names, meta)


def score_dataset(source: FeatureSource, encode, dataset_config: MotionDatasetConfig = MotionDatasetConfig(),
                  config: ScoreConfig = ScoreConfig(), layers=None, progress=None) -> LayerScores:
    """Render the motion-labelled dataset (`build_motion_dataset`) and `score_layers` it: the one call of
    the ScoreMotionLayers node and of the CLI. Arguments as in those two functions."""
    return score_layers(source, build_motion_dataset(dataset_config), encode, layers, config, progress)
