"""Motion transfer with diffusers models (the standalone path): tracker features -> injected generation.

- `extract_tracker_features`: the tracker's own video -> tracks sampling on the source latents, recording the
  chosen blocks at every step (`moaw_core.engine.capture.capture`).
- `generate`: the generator's flow-matching sampling (`moaw_core.engine.schedule.flow_sample`, diffusers'
  `FlowMatchEulerDiscreteScheduler`), optionally with an `InjectHook` on its blocks (`moaw_core.engine.hooks.attach`).
ComfyUI does the same through its own samplers (`nodes/bridge.py`); the math (`moaw_core.engine.inject`) is shared.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from moaw_core.engine.adapters import check_compatible, detect
from moaw_core.engine.capture import capture
from moaw_core.engine.features import MotionFeatures
from moaw_core.engine.hooks import HookContext, InjectHook, attach
from moaw_core.engine.inject import InjectConfig
from moaw_core.engine.schedule import flow_sample, flow_sigmas, initial_noise
from moaw_core.engine.backbones import backbone_forward
from moaw_core.tracking.tracker import MoawTracker


@torch.no_grad()
def extract_tracker_features(tracker: MoawTracker, video_latents: torch.Tensor, layers, steps: int = 4,
                             shift: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float16,
                             source: str = "", *, init_noise: str) -> tuple[MotionFeatures, torch.Tensor]:
    """Run the tracker on `video_latents` and record `layers` at each of its sampling steps.

    Args:
        tracker: a MoawTracker (eval mode). video_latents: [1, Cv, T, H, W] codec/VAE latents of the source.
        layers: canonical layer names (e.g. ["block.2", "block.3"]). steps, shift: tracker schedule.
        seed: noise seed of the track latents. init_noise (required): "gaussian", or "zeros" for one-step
            regression trackers, as the file's `moaw.schedule` records it (`checkpoint.sampling_defaults`; the
            node reads the same function), never guessed.
    Returns:
        (MotionFeatures keyed by (layer, step), predicted track latents [1, Ct, T, H, W]).
    """
    tracker.check_video_latents(video_latents)
    p = next(tracker.parameters())
    cond = video_latents.to(p.device, p.dtype)
    g = torch.Generator().manual_seed(int(seed))
    shape = (cond.shape[0], tracker.track_channels, *cond.shape[2:])
    x_T = initial_noise(shape, g, init_noise).to(p.device, p.dtype)

    def forward(x, sigma):
        t = torch.full((x.shape[0],), float(sigma) * 1000.0, device=x.device)
        return tracker(x, cond, t)

    return capture(forward, tracker.backbone, x_T, flow_sigmas(steps, shift), layers, dtype=dtype,
                   source=source or "moaw tracker")


@torch.no_grad()
def generate(generator: torch.nn.Module, shape, seed: int = 0, steps: int = 20, shift: float = 1.0,
             features: MotionFeatures | None = None, inject: InjectConfig | None = None,
             callback: Callable[[int, int], None] | None = None, condition: torch.Tensor | None = None,
             keep: tuple[torch.Tensor, torch.Tensor] | None = None, denoise: float = 1.0,
             init: torch.Tensor | None = None, guide=None) -> torch.Tensor:
    """Sample a video latent with the generator, optionally injecting `features`.

    Args:
        generator: diffusers backbone (null-text condition, see `tracker.backbone_forward`).
        shape: latent shape [B, C, T, H, W]. seed: noise seed (same seed -> same noise with or without
            injection). steps, shift: the schedule (`schedule.flow_sigmas`).
        features, inject: motion features and how to inject them (both or neither).
        callback: called as callback(step, steps) after each step.
        condition: extra input channels [B, Cc, T, H, W] concatenated after the noisy latent at every step (an
            image-to-video generator: `moaw_core.engine.i2v.image_condition`).
        keep: (latents [B, C, T, H, W], mask broadcastable to them, 1 = keep): those entries follow the given
            latents noised to each step's sigma with the run's own noise and end exactly at them (what ComfyUI
            does with a LATENT's noise_mask; used to hold the given first frame).
        denoise: < 1 starts part-way (ComfyUI KSampler's denoise): the schedule of int(steps / denoise) steps,
            of which the last `steps` run, from `init` [B, C, T, H, W] noised to the first sigma (SDEdit).
        guide: latent guidance (e.g. `moaw_core.moft.MoftGuide`): `guide(x, step, steps, t) -> x` before each
            step's forward; its `hooks` are attached to the generator too.
    Returns:
        latents [B, C, T, H, W] (float32).
    """
    if (features is None) != (inject is None):
        raise ValueError("generate: give both features and inject config, or neither")
    p = next(generator.parameters())
    _check_generate_inputs(generator, shape, condition, keep)
    if not 0.0 < denoise <= 1.0 or (denoise < 1.0 and init is None):
        raise ValueError(f"denoise: expected a value in (0, 1] (below 1 with init latents), got {denoise}")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(tuple(shape), generator=g).to(p.device, p.dtype)
    noise = x.clone()
    if condition is not None:
        condition = condition.to(p.device, p.dtype)
    if keep is not None:
        kept, m = (k.to(p.device, p.dtype) for k in keep)
    total = int(steps / denoise) if denoise < 1.0 else steps
    sigmas = flow_sigmas(total, shift)
    first = total - steps
    if first > 0 or init is not None:
        s0 = float(sigmas[first])
        x = (1 - s0) * init.to(p.device, p.dtype) + s0 * noise
    hooks = []
    if features is not None:
        adapter = detect(generator)
        check_compatible(features.fingerprint, adapter.fingerprint(generator))
        hooks = [InjectHook(features.validate(), inject, adapter)]
    if guide is not None:
        hooks = hooks + list(guide.hooks)
    ctx = HookContext(n_steps=steps)

    def before_step(x, i, sigma, t):
        ctx.step, ctx.sigma = i, sigma
        if guide is not None:
            x = guide(x, i, steps, t.to(p.dtype))
        if keep is not None:
            x = x * (1 - m) + ((1 - sigma) * kept + sigma * noise) * m
        return x

    def velocity(x, t, i, sigma):
        inp = x if condition is None else torch.cat([x, condition], 1)
        return backbone_forward(generator, inp, t.expand(x.shape[0]).to(p.dtype))

    with attach(generator, hooks, ctx=ctx):
        x = flow_sample(velocity, x, sigmas, begin=first, before_step=before_step, callback=callback)
    if keep is not None:
        x = x * (1 - m) + kept * m
    return x.float()


def _check_generate_inputs(generator, shape, condition, keep) -> None:
    shape = tuple(shape)
    c_in = generator.config.in_channels
    extra = 0 if condition is None else condition.shape[1]
    if condition is not None and (condition.ndim != 5 or condition.shape[0] != shape[0]
                                  or tuple(condition.shape[2:]) != shape[2:]):
        raise ValueError(f"condition: expected [{shape[0]}, Cc, {', '.join(map(str, shape[2:]))}], got "
                         f"{tuple(condition.shape)}")
    if shape[1] + extra != c_in:
        raise ValueError(f"condition: the generator takes {c_in} input channels, the latent has {shape[1]} and the "
                         f"condition {extra} (an image-to-video generator needs its condition; see moaw_core.engine.i2v)")
    if keep is not None and tuple(keep[0].shape) != shape:
        raise ValueError(f"keep: expected latents of shape {shape}, got {tuple(keep[0].shape)}")
