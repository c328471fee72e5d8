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
    "tracker": "lk" | "dis", "points": N} over `moaw_core.det.i2v.DEFAULTS` (`det.i2v.load_defaults`; the
    bundled file was chosen on tuning cases, clip seeds 200000+: `scripts/det_demo_cases.py tune`, docs/DET.md).
  A bad file is an error naming it (unknown DeTTrainConfig fields, bad values).
"""
from __future__ import annotations

import time

import torch

from moaw_core.engine import i2v
from moaw_core.engine.transfer import generate

# MOFT without a channels file: block, noise level, own-SVD channels of the reference (the DiT port's variant),
# the official guidance settings (moaw_core.moft.MoftGuidanceConfig's defaults)
MOFT_DEFAULTS = {"layer": "block.2", "sigma": 0.2, "fraction": 0.04,
                 "guidance": {"start": 0.12, "end": 0.48, "repeats": 2, "loss": "mse", "weight": 8.0,
                              "step_size": 0.5}}


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
    sigma, one forward; on the object's region over the clip for object cases), then guided image-to-video sampling."""
    from moaw_core.engine.adapters import detect
    from moaw_core.moft import guided_sample, reference_from_model

    gen = models.generator
    chans, layer, sigma, guidance, file = moft_settings(cfg.generator, detect(gen).fingerprint(gen))
    # the region the object covers over the whole clip, as the settings file was tuned (docs/MOFT.md)
    mask = torch.as_tensor(case.fg_mask).float().amax(0) if case.fg_mask is not None else None
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


def _det(models, case, cfg, log: dict):
    """DeT (`moaw_core.det.i2v`, the library entry point): adapters trained on the case's source video with its own
    first frame as the condition and its tracks (on the object's frame-0 mask for object cases), then the demo's
    image-to-video sampling with them. Settings: `<generator>.det.json` over `det.i2v.DEFAULTS`."""
    from moaw_core.det import i2v as det_i2v

    try:
        d = det_i2v.load_defaults(cfg.generator)
        config = det_i2v.train_config(d)
    except (TypeError, ValueError) as err:
        raise ValueError(f"DeT settings ({det_i2v.defaults_path(cfg.generator)}): {err}") from err
    mask = None if case.fg_mask is None else torch.as_tensor(case.fg_mask[0])
    trained = det_i2v.train_i2v(models.generator, models.codec, models.layout, case.source, config,
                                d.get("tracker", "lk"), int(d.get("points", 100)), mask, shift=cfg.shift,
                                source_name=f"demo case {case.name}")
    losses = trained.state.losses
    file = det_i2v.defaults_path(cfg.generator)
    log[case.name] = {"train_s": round(float(trained.info["seconds"]), 2), "steps": config.steps,
                      "train": d["train"], "apply": d["apply"], "tracker": d.get("tracker", "lk"),
                      "settings_file": str(file) if file.is_file() else "",
                      "loss_first_last": [losses[0]["loss"], losses[-1]["loss"]] if losses else []}

    def make(seed: int) -> torch.Tensor:
        return det_i2v.animate_i2v(models.generator, models.codec, models.layout, case.image, case.source.shape[0],
                                   seed, trained.adapters, steps=cfg.gen_steps, denoise=cfg.denoise, shift=cfg.shift,
                                   keep_first_frame=cfg.keep_first_frame, fraction=float(d["apply"]["fraction"]),
                                   scale=float(d["apply"]["strength"]))

    return make
