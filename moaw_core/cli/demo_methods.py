"""How the demo generates each row on its image-to-video generator: plain (`animate`, `i2v_inputs`), Moaw injection
(`animate` with features), MOFT guidance and DeT adapters.

`prepare(method, models, case, cfg, timings)` does a method's per-case work (MOFT: the source's reference
features; DeT: training adapters on the source video) and returns `seed -> video [T, H, W, 3]`, the same
image-to-video generation as the demo's plain row (`animate`: same noise, condition, kept first frame and
denoise) with the method switched on.

Settings come from files next to the generator where they exist, else from the built-in defaults; none is ever
chosen on the demo's held-out cases:
  - MOFT: `<generator>.moft.json` (`moaw_core.moft.MoftChannels`: block, sigma, channels, pooling and the guidance
    settings chosen for that model; the bundled I2V generator has one); without it `MOFT_DEFAULTS`: the official
    guidance settings and the reference's own-SVD channels (`moft_settings`).
  - DeT: `<generator>.det.json` {"train": {DeTTrainConfig fields}, "apply": {"fraction", "strength"},
    "tracker": "lk" | "dis", "points": N} over `DET_DEFAULTS`, which were chosen on tuning cases (clip seeds
    200000+, generation seeds 10-11: `scripts/tune_demo.py --method det`; docs/DEMO.md) (`det_settings`).
  A bad file is an error naming it (unknown DeTTrainConfig fields, bad values).
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from moaw_core.engine import i2v
from moaw_core.engine.transfer import generate

# MOFT without a channels file: block, noise level, own-SVD channels of the reference (the DiT port's variant),
# the official guidance settings (moaw_core.moft.MoftGuidanceConfig's defaults)
MOFT_DEFAULTS = {"layer": "block.2", "sigma": 0.2, "fraction": 0.04,
                 "guidance": {"start": 0.12, "end": 0.48, "repeats": 2, "loss": "mse", "weight": 8.0,
                              "step_size": 0.5}}
DET_DEFAULTS = {"train": {"steps": 80, "lr": 1e-3, "track_weight": 0.1}, "apply": {"fraction": 1.0, "strength": 1.0},
                "tracker": "lk", "points": 100}


def i2v_inputs(models, image: torch.Tensor, frames: int, cfg) -> dict:
    """The image-to-video sampling inputs of `image` (keyword arguments of `engine.transfer.generate` /
    `moft.guided_sample`): shape, condition, the kept first frame, denoise and its start latents."""
    if models.layout is None:
        raise ValueError("generator: expected an image-to-video generator (moaw.i2v layout; `train --task i2v`), "
                         "got an unconditional one")
    cond, lat = i2v.image_condition(models.codec.encode, image, frames, models.layout)
    keep = (lat, i2v.given_mask(frames, models.layout.given_frames)) if cfg.keep_first_frame else None
    return {"shape": tuple(lat.shape), "steps": cfg.gen_steps, "shift": cfg.shift, "condition": cond, "keep": keep,
            "denoise": cfg.denoise, "init": lat if cfg.denoise < 1.0 else None}


def animate(models, image: torch.Tensor, frames: int, seed: int, cfg, features=None, inject=None) -> torch.Tensor:
    """The image-to-video generation of one seed (plain, or with `features` injected). Returns [T,H,W,3]."""
    out = generate(models.generator, seed=seed, features=features, inject=inject,
                   **i2v_inputs(models, image, frames, cfg))
    return models.codec.decode(out)[0].clamp(0, 1)


def det_settings(generator) -> dict:
    """DeT settings for `generator`: `<generator>.det.json` over `DET_DEFAULTS` (dicts merged key by key);
    "file" says which file was read ("" = none)."""
    path = Path(generator).with_suffix(".det.json")
    out = json.loads(json.dumps(DET_DEFAULTS))
    out["file"] = ""
    if path.is_file():
        data = json.loads(path.read_text())
        for key, value in data.items():
            out[key] = {**out[key], **value} if isinstance(out.get(key), dict) and isinstance(value, dict) else value
        out["file"] = str(path)
    return out


def prepare(method: str, models, case, cfg, timings: dict):
    """Per-case preparation of `method` ("moft" | "det"); returns `seed -> video [T, H, W, 3]`. Records what
    it did under timings[method][case] (DeT: training seconds per video)."""
    if method == "moft":
        return _moft(models, case, cfg, timings.setdefault("moft", {}))
    if method == "det":
        return _det(models, case, cfg, timings.setdefault("det", {}))
    raise ValueError(f"method: expected 'moft' or 'det', got {method!r}")


def moft_settings(generator, fingerprint: dict):
    """(channels or None, layer, sigma, guidance config maker) for `generator`: its `<generator>.moft.json`
    (`moaw_core.moft.MoftChannels`, checked against the model; block, sigma, channels, pooling and the guidance
    settings tuned for it) when it exists, else `MOFT_DEFAULTS` (the reference's own-SVD channels); "file" is
    the file read ("" = none). The maker takes the region mask (or None) and returns a MoftGuidanceConfig."""
    from moaw_core.moft import MoftChannels, MoftGuidanceConfig, channels_path

    path = channels_path(generator)
    if not path.is_file():
        d = MOFT_DEFAULTS
        return None, d["layer"], float(d["sigma"]), (lambda mask: MoftGuidanceConfig(**d["guidance"], mask=mask)), ""
    chans = MoftChannels.load(path)
    chans.check_model(fingerprint)
    return chans, chans.layer, chans.sigma, chans.guidance_config, str(path)


def _moft(models, case, cfg, log: dict):
    """MOFT: the source's reference at one block (the source with its own first frame as the condition, noised to
    sigma, one forward; on the object's frame-0 mask for object cases), then guided image-to-video sampling."""
    from moaw_core.engine.adapters import detect
    from moaw_core.moft import guided_sample, reference_from_model

    gen = models.generator
    chans, layer, sigma, guidance, file = moft_settings(cfg.generator, detect(gen).fingerprint(gen))
    mask = torch.as_tensor(case.fg_mask[0]).float() if case.fg_mask is not None else None
    frames = case.source.shape[0]
    t0 = time.perf_counter()
    src_cond, _ = i2v.image_condition(models.codec.encode, case.source[0], frames, models.layout)
    ref = reference_from_model(gen, models.codec.encode(case.source), layer, sigma, chans,
                               float(MOFT_DEFAULTS["fraction"]), mask, condition=src_cond,
                               source=f"demo case {case.name}")
    config = guidance(mask)
    config.guided_steps(cfg.gen_steps)
    log[case.name] = {"reference_s": round(time.perf_counter() - t0, 3), "layer": layer, "sigma": sigma,
                      "channels": list(ref.channels), "reference": dict(ref.extra), "settings_file": file,
                      "guidance": {k: getattr(config, k) for k in ("start", "end", "repeats", "loss", "weight",
                                                                   "step_size")},
                      "mask": config.mask is not None}

    def make(seed: int) -> torch.Tensor:
        out, losses = guided_sample(gen, reference=ref, config=config, seed=seed,
                                    **i2v_inputs(models, case.image, frames, cfg))
        log[case.name].setdefault("loss_first_last", {})[str(seed)] = _first_last(losses)
        return models.codec.decode(out)[0].clamp(0, 1)

    return make


def _first_last(losses: dict) -> list[float]:
    if not losses:
        return []
    return [float(losses[min(losses)][0]), float(losses[max(losses)][-1])]


def det_train(models, case, config, tracker: str = "lk", points: int = 100, adapters=None, state=None):
    """Train DeT adapters on the case's source video (frozen generator): diffusion loss with the source's own first
    frame as the image-to-video condition, plus the tracking loss on its `tracker` tracks (on the object mask for
    object cases). `adapters` / `state` continue an earlier run up to `config.steps` steps in total.
    Returns (adapters, state, seconds)."""
    from moaw_core.det.pipeline import train_det
    from moaw_core.det.tracks import latent_tracks, source_tracks

    t0 = time.perf_counter()
    x0 = models.codec.encode(case.source)
    mask = None if case.fg_mask is None else torch.as_tensor(case.fg_mask[0])
    pts, vis = source_tracks(case.source, tracker, int(points), mask, config.seed)
    tracks = latent_tracks(pts, vis, tuple(case.source.shape[1:3]), tuple(x0.shape[2:]),
                           getattr(models.codec, "temporal_factor", 1))
    layout = models.layout

    def condition(x_t, x):
        return torch.cat([x_t, i2v.condition_from_latents(x, layout).to(x_t.dtype)], 1)

    adapters, state, _ = train_det(models.generator, x0, config, tracks, adapters=adapters, state=state,
                                   condition=condition)
    return adapters, state, time.perf_counter() - t0


def det_animate(models, case, cfg, adapters, fraction: float, strength: float):
    """`seed -> video`: the demo's image-to-video generation with the adapters in the first `fraction` of blocks."""
    from moaw_core.det.adapter import first_fraction
    from moaw_core.det.placement import attach_det

    chosen = first_fraction(adapters.layer_names, float(fraction))

    def make(seed: int) -> torch.Tensor:
        with attach_det(models.generator, adapters, chosen, scale=float(strength)):
            return animate(models, case.image, case.source.shape[0], seed, cfg)

    return make


def _det(models, case, cfg, log: dict):
    """DeT: adapters trained on the source video (`det_train`), then sampling with them (`det_animate`)."""
    from moaw_core.det.train import DeTTrainConfig

    d = det_settings(cfg.generator)
    try:
        config = replace(DeTTrainConfig(), **d["train"]).validate()
    except (TypeError, ValueError) as err:
        raise ValueError(f"DeT settings ({d['file'] or 'DET_DEFAULTS'}): {err}") from err
    adapters, state, seconds = det_train(models, case, config, d["tracker"], int(d["points"]))
    losses = state.losses
    log[case.name] = {"train_s": round(seconds, 2), "steps": state.step, "train": d["train"], "apply": d["apply"],
                      "tracker": d["tracker"], "settings_file": d["file"],
                      "loss_first_last": [losses[0]["loss"], losses[-1]["loss"]] if losses else []}
    return det_animate(models, case, cfg, adapters, d["apply"]["fraction"], d["apply"]["strength"])
