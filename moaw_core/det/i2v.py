"""DeT on an image-to-video generator (the demo's setting): train on a source video with its first frame as the
condition, then animate another image with the adapters loaded. What the demo's DeT row and the tuning script call.

    defaults = load_defaults(generator_path)                 # <generator>.det.json, chosen on tuning clips
    out = transfer_case(gen, codec, layout, source, image, seeds=[0, 1], defaults=defaults)
    out["videos"][0]                                         # [T, H, W, 3] in [0, 1], DeT; plain: adapters=None

Training (DeT §3, `moaw_core.det.train`): the noisy source latent is concatenated with the I2V condition built from
the source's frame 0 exactly as at sampling (`moaw_core.engine.i2v.image_condition`), so the adapters learn the
source's motion given its first frame. Sampling (`animate_i2v`) is the demo's: the condition video noised to
`denoise`, frame 0 held at the image's latent; `adapters=None` gives the plain generation with the same noise.
The defaults file (`<generator>.det.json`: {"train": {...}, "apply": {"fraction", "strength"}, "tracker", "points"})
holds the settings chosen on the tuning clips (`scripts/det_demo_cases.py tune`); without it `DEFAULTS` apply.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from moaw_core.det.train import DeTTrainConfig

SUFFIX = ".det.json"
# Built-in defaults when a generator has no <generator>.det.json (the values chosen for the bundled tiny I2V generator;
# same layout as the file, which `moaw_core.cli.demo_methods.det_settings` reads too).
DEFAULTS = {"train": {"steps": 100, "lr": 1e-3, "track_weight": 0.1}, "apply": {"fraction": 1.0, "strength": 1.0},
            "tracker": "lk", "points": 100}


def defaults_path(generator) -> Path:
    """`<generator without .safetensors>.det.json` next to the generator file."""
    p = Path(generator)
    return p.with_name(p.name.removesuffix(".safetensors") + SUFFIX)


def load_defaults(generator) -> dict:
    """The DeT defaults of a generator file: its `.det.json` over `DEFAULTS`, dicts merged key by key (keys: train
    {DeTTrainConfig fields}, apply {fraction, strength}, tracker, points; the file may add notes such as how they
    were chosen)."""
    out = json.loads(json.dumps(DEFAULTS))
    path = defaults_path(generator)
    if path.is_file():
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of DeT defaults, got {type(data).__name__}")
        for key, value in data.items():
            out[key] = {**out[key], **value} if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    known = {f.name for f in fields(DeTTrainConfig)}
    unknown = sorted(set(out["train"]) - known)
    if unknown:
        raise ValueError(f"{path}: unknown DeT training settings {unknown}; known: {sorted(known)}")
    return out


def train_config(defaults: dict, **override) -> DeTTrainConfig:
    """DeTTrainConfig from a defaults dict's "train" part, with keyword overrides."""
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in defaults["train"].items()}
    return replace(DeTTrainConfig(**cfg), **override).validate()


def _check(layout, video: torch.Tensor, name: str) -> None:
    if layout is None:
        raise ValueError("layout: expected the generator's I2VLayout (moaw_core.engine.i2v.layout_of), got None: "
                         "DeT's image-to-video path needs an image-to-video generator")
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 2:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"{name}: expected a video [T, H, W, 3] in [0, 1] with T >= 2, got {got}")


def train_i2v(generator, codec, layout, source: torch.Tensor, config: DeTTrainConfig, tracker: str = "lk",
              points: int = 100, mask=None, shift: float = 1.0, progress=None, source_name: str = ""):
    """Train DeT adapters on `source` [T, H, W, 3] for an image-to-video generator (base frozen).

    Args:
        generator: diffusers Wan I2V backbone. codec: encode(pixels) -> [1, C, T, h, w]. layout: its I2VLayout.
        config: DeTTrainConfig. tracker: "lk" | "dis" | "cotracker" | "none". mask: first-frame foreground [H, W].
    Returns:
        TrainedDeT (info["seconds"] = tracking + training seconds, info["task"] = "i2v").
    """
    from moaw_core.det.pipeline import train_on_video
    from moaw_core.engine.i2v import image_condition

    _check(layout, source, "source")
    cond = image_condition(codec.encode, source[0], int(source.shape[0]), layout)[0]

    def condition(x_t, x0):
        return torch.cat([x_t, cond.to(x_t.device, x_t.dtype)], 1)

    trained = train_on_video(generator, codec, source, config, tracker, points, mask, shift=shift,
                             progress=progress, source=source_name, condition=condition)
    trained.info["task"] = "i2v"
    return trained


@torch.no_grad()
def animate_i2v(generator, codec, layout, image: torch.Tensor, frames: int, seed: int, adapters=None,
                steps: int = 12, denoise: float = 0.85, shift: float = 1.0, keep_first_frame: bool = True,
                fraction: float = 0.35, scale: float = 1.0, layers=None) -> torch.Tensor:
    """Animate `image` [H, W, 3] for `frames` frames (the demo's sampling), with DeT `adapters` in the first
    `fraction` of blocks (or `layers`), or plain when adapters is None (same noise for the same seed).
    Returns video [T, H, W, 3] in [0, 1]."""
    from moaw_core.det.adapter import first_fraction
    from moaw_core.det.placement import attach_det
    from moaw_core.engine.i2v import given_mask, image_condition
    from moaw_core.engine.transfer import generate

    if layout is None:
        raise ValueError("layout: expected the generator's I2VLayout, got None (not an image-to-video generator)")
    cond, lat = image_condition(codec.encode, image, int(frames), layout)
    keep = (lat, given_mask(int(frames), layout.given_frames)) if keep_first_frame else None

    def run():
        return generate(generator, tuple(lat.shape), seed=seed, steps=steps, shift=shift, condition=cond, keep=keep,
                        denoise=denoise, init=lat if denoise < 1.0 else None)

    if adapters is None:
        out = run()
    else:
        chosen = list(layers) if layers is not None else first_fraction(adapters.layer_names, fraction)
        with attach_det(generator, adapters, chosen, scale=scale):
            out = run()
    return codec.decode(out)[0].clamp(0, 1)


def transfer_case(generator, codec, layout, source: torch.Tensor, image: torch.Tensor, seeds, defaults: dict | None = None,
                  steps: int = 12, denoise: float = 0.85, shift: float = 1.0, keep_first_frame: bool = True,
                  mask=None, progress=None, **train_override) -> dict:
    """One demo case with DeT: train on `source` [T, H, W, 3], then animate `image` [H, W, 3] for each seed.

    Args:
        defaults: `load_defaults(generator_path)` (None: `DEFAULTS`). steps, denoise, shift, keep_first_frame: the
            sampling (as the demo's plain run, so the plain run with the same seed has the same noise).
        mask: first-frame foreground mask [H, W] for the track queries. train_override: DeTTrainConfig fields.
    Returns:
        {"videos": {seed: [T, H, W, 3]}, "trained": TrainedDeT, "train_seconds": training + tracking seconds,
         "sample_seconds": seconds of all DeT samplings, "settings": the defaults used}.
    """
    d = json.loads(json.dumps(defaults if defaults is not None else DEFAULTS))
    config = train_config(d, **train_override)
    _check(layout, source, "source")
    trained = train_i2v(generator, codec, layout, source, config, d.get("tracker", "lk"), int(d.get("points", 100)),
                        mask, shift=shift, progress=progress)
    t0, videos = time.perf_counter(), {}
    for seed in seeds:
        videos[seed] = animate_i2v(generator, codec, layout, image, int(source.shape[0]), seed, trained.adapters,
                                   steps=steps, denoise=denoise, shift=shift, keep_first_frame=keep_first_frame,
                                   fraction=float(d["apply"]["fraction"]), scale=float(d["apply"]["strength"]))
    d["train"] = asdict(config)
    return {"videos": videos, "trained": trained, "train_seconds": float(trained.info["seconds"]),
            "sample_seconds": time.perf_counter() - t0, "settings": d}
