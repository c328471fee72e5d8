"""MOFT on diffusers models: the reference from a transformer, and guided sampling.

- `reference_from_model`: the source latent noised to one sigma, one forward (cond pass), the chosen block
  recorded (`engine.capture.capture_training_free`), turned into a `MoftReference`.
- `MoftGuide`: the per-step guidance of one model (a `FeatureTap` on its feature block plus
  `guidance.guide_latents`); `guide(x, step, n_steps, t)` returns the guided latents. Any loop can call it
  before its step: `guided_sample` uses the project's flow-matching Euler loop (`engine.transfer.generate`, the
  same loop plain sampling uses), `cli/transfer.py` the WanPipeline's `callback_on_step_end`.
"""
from __future__ import annotations

from typing import Callable

import torch

from moaw_core.engine.adapters import detect
from moaw_core.engine.capture import capture_training_free, flow_noise
from moaw_core.engine.inject import step_active
from moaw_core.moft.features import MoftReference, build_reference, check_noise_mode
from moaw_core.moft.guidance import FeatureTap, MoftGuidanceConfig, check_reference, guide_latents, latent_mask


def _null_kwargs(model, latents):
    from moaw_core.tracking.tracker import null_condition

    p = next(model.parameters())
    return null_condition(model, latents.shape[0], p.device, p.dtype)


def reference_from_model(model: torch.nn.Module, latents: torch.Tensor, layer: str, sigma: float = 0.2,
                         channels=None, fraction: float = 0.04, mask: torch.Tensor | None = None,
                         forward_kwargs: dict | None = None, seed: int = 0, noise: str = "frame",
                         source: str = "", pooling: str = "mean", condition: torch.Tensor | None = None) -> MoftReference:
    """The reference MOFT of a source latent.

    Args:
        model: diffusers transformer with a Moaw adapter (Wan, HunyuanVideo, CogVideoX, ...).
        latents: clean source latent `[1, C, T, H, W]` (the model's input layout).
        layer: block name ("block.3"). sigma: noise level of the single forward (official t = 200/1000).
        channels: motion channels (a `MoftChannels`, or indices); None = the DiT port's own-SVD selection
            (`fraction` of the width). mask: source region `[H, W]` / `[T, H, W]` or None.
        forward_kwargs: conditioning of the forward (default: the null text condition the tiny models use).
        noise: "frame" (one noise frame shared by all frames, see `features.NOISE_MODES`) or "independent".
        pooling: spatial pooling (`features.POOLINGS`); a `MoftChannels` brings its own.
        condition: extra input channels `[1, Cc, T, H, W]` concatenated after the noisy latent (an image-to-video
            generator: `engine.i2v.image_condition` of the source's first frame), or None.
    Returns MoftReference."""
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or latents.shape[0] != 1:
        raise ValueError(f"latents: expected the source latent [1, C, T, H, W], got "
                         f"{getattr(latents, 'shape', type(latents))}")
    if not 0 < float(sigma) <= 1:
        raise ValueError(f"sigma: expected a noise level in (0, 1], got {sigma}")
    fingerprint = detect(model).fingerprint(model)
    if hasattr(channels, "channels"):
        channels.check_model(fingerprint)
        if channels.layer != layer:
            raise ValueError(f"channels were selected at {channels.layer!r}, the reference uses {layer!r}")
        channels, pooling = channels.channels, channels.pooling
    grid = feature_grid(model, latents, layer, sigma, forward_kwargs, seed, noise, condition)
    return build_reference(grid, layer, sigma, fingerprint, channels, fraction, mask, source or "diffusers", pooling)


def feature_grid(model: torch.nn.Module, latents: torch.Tensor, layer: str, sigma: float = 0.2,
                 forward_kwargs: dict | None = None, seed: int = 0, noise: str = "frame",
                 condition: torch.Tensor | None = None) -> torch.Tensor:
    """`[B, T, H, W, C]` features of `layer` for `latents` noised to `sigma` (one forward, float32); `condition`:
    extra input channels `[B, Cc, T, H, W]` (image-to-video) concatenated after the noisy latent, or None."""
    check_noise_mode(noise)
    kwargs = forward_kwargs if forward_kwargs is not None else _null_kwargs(model, latents)
    if condition is not None:
        if condition.ndim != 5 or condition.shape[0] != latents.shape[0] or condition.shape[2:] != latents.shape[2:]:
            raise ValueError(f"condition: expected [{latents.shape[0]}, Cc, {', '.join(map(str, latents.shape[2:]))}]"
                             f", got {tuple(condition.shape)}")
        if latents.shape[1] + condition.shape[1] != model.config.in_channels:
            raise ValueError(f"condition: the model takes {model.config.in_channels} input channels, the latent has "
                             f"{latents.shape[1]} and the condition {condition.shape[1]}")

    def noise_fn(x0, n, s):
        x_t, t = flow_noise(x0, n[:, :, :1].expand_as(n) if noise == "frame" else n, s)
        return (x_t if condition is None else torch.cat([x_t, condition.to(x_t)], 1)), t

    feats = capture_training_free(model, latents, [float(sigma)], [layer], forward_kwargs=kwargs, seed=seed,
                                  noise_fn=noise_fn, dtype=torch.float32)
    return feats.get(layer, 0)


class MoftGuide:
    """MOFT guidance of one diffusers model; call it with the latents before each sampler step.

    Args:
        model: the transformer. reference, config: what to match and how. forward: `(x, t) -> anything`, one
            cond forward of `model` (t: the model timestep tensor of the step). Attach `self.hooks` to the model
            (`engine.hooks.attach`) for the duration of sampling.
    Attributes: losses {step: [weighted loss before each repeat]}.
    """

    def __init__(self, model: torch.nn.Module, reference: MoftReference, config: MoftGuidanceConfig,
                 forward: Callable[[torch.Tensor, torch.Tensor], object]):
        if not isinstance(config, MoftGuidanceConfig):
            raise TypeError(f"config: expected MoftGuidanceConfig, got {type(config).__name__}")
        adapter = detect(model)
        check_reference(reference, adapter, adapter.fingerprint(model), [lay.name for lay in adapter.layers(model)])
        self.adapter, self.reference, self.config, self.forward = adapter, reference, config, forward
        self.blocks = [model.get_submodule(lay.path) for lay in adapter.layers(model)]
        self.tap = FeatureTap(adapter, reference.layer)
        self.hooks = [self.tap]
        self.losses: dict[int, list[float]] = {}

    def active(self, step: int, n_steps: int) -> bool:
        return self.config.weight != 0 and step_active(step, n_steps, self.config.start, self.config.end)

    def __call__(self, x: torch.Tensor, step: int, n_steps: int, t: torch.Tensor) -> torch.Tensor:
        if not self.active(step, n_steps):
            return x
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])

        def features(xr):
            return self.tap.features(lambda: self.forward(xr, t))

        x, losses = guide_latents(x, features, self.reference, self.config, self.adapter,
                                  latent_mask(self.config, x.shape), self.blocks)
        self.losses[step] = losses
        return x


def guided_sample(generator: torch.nn.Module, shape, reference: MoftReference, config: MoftGuidanceConfig,
                  seed: int = 0, steps: int = 20, shift: float = 1.0,
                  callback: Callable[[int, int], None] | None = None, condition: torch.Tensor | None = None,
                  keep=None, denoise: float = 1.0, init: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, dict[int, list[float]]]:
    """MOFT-guided sampling with the project's flow-matching Euler loop (null text condition, as
    `engine.transfer.generate`; same noise as plain sampling with the same seed).

    Args:
        generator: diffusers backbone. shape: latent `[B, C, T, H, W]`. reference, config: the guidance.
        seed, steps, shift: as `generate`. callback: `callback(step, steps)` after each step.
        condition, keep, denoise, init: image-to-video sampling, as `generate` (the guidance forward gets the
            same condition channels).
    Returns:
        (latents `[B, C, T, H, W]` float32, {guided step: losses})."""
    from moaw_core.engine.transfer import generate
    from moaw_core.tracking.tracker import backbone_forward

    config.guided_steps(steps)  # an empty window is an error before any work

    def forward(x, t):
        return backbone_forward(generator, x if condition is None else torch.cat([x, condition.to(x)], 1), t)

    guide = MoftGuide(generator, reference, config, forward)
    out = generate(generator, shape, seed=seed, steps=steps, shift=shift, callback=callback, guide=guide,
                   condition=condition, keep=keep, denoise=denoise, init=init)
    return out, guide.losses


def guided_pipeline_call(pipe, reference: MoftReference, config: MoftGuidanceConfig, prompt_embeds: torch.Tensor,
                         steps: int, seed: int, height: int, width: int, num_frames: int, **call_kwargs):
    """One diffusers Wan pipeline call with MOFT guidance on `pipe.transformer` (Wan 2.2: the high-noise expert,
    which covers the early window). The pipeline's own noise (same seed -> same noise as a plain call), its own
    scheduler and loop: the first step is guided before the call (`latents=`), every later one in
    `callback_on_step_end` before the step's forward.

    Args:
        prompt_embeds: the cond text embeddings of the guidance forward `[1, L, D]`.
        call_kwargs: the rest of the pipeline's arguments (prompt, guidance_scale, output_type, ...).
    Returns (pipeline output, {guided step: losses})."""
    from moaw_core.engine.hooks import attach

    config.guided_steps(steps)
    model = pipe.transformer
    emb = prompt_embeds.to(model.dtype)
    guide = MoftGuide(model, reference, config, lambda x, t: model(hidden_states=x.to(model.dtype), timestep=t,
                                                                   encoder_hidden_states=emb, return_dict=False))
    device = next(model.parameters()).device
    gen = torch.Generator("cpu").manual_seed(int(seed))
    latents = pipe.prepare_latents(1, model.config.in_channels, height, width, num_frames, torch.float32, device, gen)
    pipe.scheduler.set_timesteps(steps, device=device)
    timesteps = pipe.scheduler.timesteps.clone()

    def on_step_end(_pipe, i, t, kwargs):
        if i + 1 < steps:
            kwargs["latents"] = guide(kwargs["latents"], i + 1, steps, timesteps[i + 1])
        return kwargs

    with attach(model, guide.hooks):
        latents = guide(latents, 0, steps, timesteps[0])
        out = pipe(height=height, width=width, num_frames=num_frames, num_inference_steps=steps, latents=latents,
                   generator=torch.Generator("cpu").manual_seed(int(seed)), callback_on_step_end=on_step_end,
                   **call_kwargs)
    return out, guide.losses
