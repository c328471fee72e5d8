"""Motion transfer with diffusers models (the standalone path): tracker features -> injected generation.

- `extract_tracker_features`: the tracker's own video -> tracks sampling on the source latents, recording the
  chosen blocks at every step (`moaw_core.engine.capture.capture`).
- `generate`: the generator's flow-matching sampling with diffusers' `FlowMatchEulerDiscreteScheduler`,
  optionally with an `InjectHook` on its blocks (`moaw_core.engine.hooks.attach`).
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
from moaw_core.engine.schedule import inference_sigmas, initial_noise
from moaw_core.tracking.tracker import MoawTracker, backbone_forward


@torch.no_grad()
def extract_tracker_features(tracker: MoawTracker, video_latents: torch.Tensor, layers, steps: int = 4,
                             shift: float = 1.0, seed: int = 0, dtype: torch.dtype = torch.float16,
                             source: str = "", init_noise: str = "gaussian") -> tuple[MotionFeatures, torch.Tensor]:
    """Run the tracker on `video_latents` and record `layers` at each of its sampling steps.

    Args:
        tracker: a MoawTracker (eval mode). video_latents: [1, Cv, T, H, W] codec/VAE latents of the source.
        layers: canonical layer names (e.g. ["block.2", "block.3"]). steps, shift: tracker schedule.
        seed: noise seed of the track latents. init_noise: "gaussian", or "zeros" for one-step regression
            trackers (their file's `moaw.schedule`; see `checkpoint.sampling_defaults`).
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

    return capture(forward, tracker.backbone, x_T, inference_sigmas(steps, shift), layers, dtype=dtype,
                   source=source or "moaw tracker")


@torch.no_grad()
def generate(generator: torch.nn.Module, shape, seed: int = 0, steps: int = 20, shift: float = 1.0,
             features: MotionFeatures | None = None, inject: InjectConfig | None = None,
             callback: Callable[[int, int], None] | None = None, guide=None) -> torch.Tensor:
    """Sample a video latent with the generator, optionally injecting `features`.

    Args:
        generator: diffusers backbone (null-text condition, see `tracker.backbone_forward`).
        shape: latent shape [B, C, T, H, W]. seed: noise seed (same seed -> same noise with or without
            injection). steps, shift: FlowMatchEulerDiscreteScheduler settings.
        features, inject: motion features and how to inject them (both or neither).
        callback: called as callback(step, steps) after each step.
        guide: latent guidance (e.g. `moaw_core.moft.MoftGuide`): `guide(x, step, steps, t) -> x` before each
            step's forward; its `hooks` are attached to the generator too.
    Returns:
        latents [B, C, T, H, W] (float32).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if (features is None) != (inject is None):
        raise ValueError("generate: give both features and inject config, or neither")
    p = next(generator.parameters())
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(tuple(shape), generator=g).to(p.device, p.dtype)
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps, device=p.device)
    hooks = []
    if features is not None:
        adapter = detect(generator)
        check_compatible(features.fingerprint, adapter.fingerprint(generator))
        hooks = [InjectHook(features.validate(), inject, adapter)]
    if guide is not None:
        hooks = hooks + list(guide.hooks)
    ctx = HookContext(n_steps=steps)
    with attach(generator, hooks, ctx=ctx):
        for i, t in enumerate(sched.timesteps):
            ctx.step, ctx.sigma = i, float(sched.sigmas[i])
            if guide is not None:
                x = guide(x, i, steps, t.to(p.dtype))
            v = backbone_forward(generator, x, t.expand(x.shape[0]).to(p.dtype))
            x = sched.step(v, t, x, return_dict=False)[0]
            if callback is not None:
                callback(i + 1, steps)
    return x.float()
