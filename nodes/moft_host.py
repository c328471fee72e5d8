"""ComfyUI glue for MOFT (imports `comfy`; not a node module, defines no NODES).

- `comfy_reference`: the source LATENT noised to one sigma, one cond forward of the native MODEL, one block
  recorded (`bridge.capture_comfy`) -> `MoftReference`.
- `comfy_select_channels`: PCA channel selection on rendered opposite-motion clips (`moaw_core.moft.channels`).
- `MoftGuider`: a `comfy.samplers.CFGGuider` for SamplerCustomAdvanced / the one-node sampler. It samples a clone
  of the MODEL with a `FeatureTap` on the feature block and wraps the chosen sampler in `MoftSampler`, which runs
  ComfyUI's own sampler function segment by segment: before each guided step, `guide_latents` (cond pass only,
  forward stopped after the feature block), then the sampler's normal step. Gradients run under
  `torch.inference_mode(False)` + `torch.enable_grad()`, as core's TrainLoraNode; weights that ComfyUI loaded
  as inference tensors are read through ComfyUI's own `weight_function` cast path (a fresh copy per op) only
  for the duration of a guidance forward.

Guided steps restart multistep samplers' history (dpmpp_2m etc.) and draw fresh ancestral noise per segment; the
official code uses DDIM. Weight 0 runs the plain sampler (bit-identical to sampling the MODEL without MOFT).
"""
from __future__ import annotations

import contextlib

import torch

import comfy.model_management
import comfy.ops
import comfy.sample
import comfy.samplers

from moaw_core.engine.adapters import detect
from moaw_core.moft.channels import MoftChannels, select_channels
from moaw_core.moft.features import MoftReference, build_reference, check_noise_mode, region_mask
from moaw_core.moft.guidance import (FeatureTap, MoftGuidanceConfig, check_reference, check_token_grid,
                                     guide_latents, latent_mask)

from .bridge import attach_hooks, capture_comfy


def _layer_names(model_patcher) -> list[str]:
    dm = model_patcher.model.diffusion_model
    return [lay.name for lay in detect(dm).layers(dm)]


def _check_layer(model_patcher, layer: str) -> None:
    names = _layer_names(model_patcher)
    if layer not in names:
        raise ValueError(f"layer: {layer!r} is not a block of this model; valid: {names[0]} ... {names[-1]}")


def feature_grid(model_patcher, latent, positive, layer: str, sigma: float, seed: int = 0, noise: str = "frame"):
    """(`[1, T, H, W, C]` features of `layer` for a source LATENT noised to `sigma` (one cond forward), the
    model's fingerprint). noise: "frame" (shared by all frames) or "independent" (`features.NOISE_MODES`)."""
    _check_layer(model_patcher, layer)
    check_noise_mode(noise)
    if not 0 < float(sigma):
        raise ValueError(f"sigma: expected a positive noise level, got {sigma}")
    samples = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    n = comfy.sample.prepare_noise(samples[:, :, :1] if noise == "frame" else samples, seed)
    feats = capture_comfy(model_patcher, samples, positive, positive, torch.tensor([float(sigma)]), [layer],
                          seed=seed, mode="training_free", dtype=torch.float32, source="moft reference",
                          noise=n.expand_as(samples).contiguous())
    return feats.get(layer, 0), feats.fingerprint


def comfy_reference(model_patcher, latent, positive, layer: str, sigma: float = 0.2, channels=None,
                    fraction: float = 0.04, mask=None, seed: int = 0, noise: str = "frame") -> MoftReference:
    """The reference MOFT of a source LATENT (`channels`: MoftChannels, whose pooling it uses, or None for the
    own-SVD selection with the official spatial mean)."""
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor) or \
            latent["samples"].ndim != 5 or latent["samples"].shape[0] != 1:
        raise ValueError("source: expected a video LATENT of one clip [1, C, T, H, W] (VAEEncode of the source)")
    grid, fp = feature_grid(model_patcher, latent, positive, layer, sigma, seed, noise)
    if channels is not None:
        if not isinstance(channels, MoftChannels):
            raise TypeError(f"channels: expected MOFT channels, got {type(channels).__name__}")
        channels.check_model(fp)
        if channels.layer != layer:
            raise ValueError(f"channels were selected at {channels.layer!r}; build the reference at that block "
                             f"(got {layer!r})")
        channels, pooling = channels.channels, channels.pooling
    else:
        pooling = "mean"
    return build_reference(grid, layer, sigma, fp, channels, fraction, mask, source="comfy", pooling=pooling)


def comfy_select_channels(model_patcher, vae, positive, layer: str, sigma: float, k: int, clips: int, frames: int,
                          width: int, height: int, seed: int, progress=None) -> MoftChannels:
    """PCA channels of `layer` on rendered pan-left / pan-right clips encoded by `vae`."""
    _check_layer(model_patcher, layer)
    dm = model_patcher.model.diffusion_model
    fp = detect(dm).fingerprint(dm)

    def features(video):
        comfy.model_management.throw_exception_if_processing_interrupted()
        return feature_grid(model_patcher, {"samples": vae.encode(video)}, positive, layer, sigma, seed)[0]

    return select_channels(features, layer, sigma, fp, k=k or None, clips=clips, frames=frames, height=height,
                           width=width, seed=seed, progress=progress)


@contextlib.contextmanager
def _grad_readable_weights(module: torch.nn.Module):
    """For the duration of a guidance forward, ComfyUI cast ops read their weights and biases through the
    `weight_function` / `bias_function` path (a fresh copy per op), so parameters that ComfyUI loaded as
    inference tensors can be saved for backward. Restored in `finally`."""
    touched = []
    try:
        for m in module.modules():
            if isinstance(m, comfy.ops.CastWeightBiasOp):
                for attr, param in (("weight_function", "weight"), ("bias_function", "bias")):
                    if getattr(m, param, None) is not None:
                        touched.append((m, attr, m.__dict__.get(attr)))
                        setattr(m, attr, list(getattr(m, attr)) + [_same])
        yield
    finally:
        for m, attr, old in reversed(touched):
            if old is None:
                delattr(m, attr)
            else:
                setattr(m, attr, old)


def _same(w):
    return w


class MoftGuider(comfy.samplers.CFGGuider):
    """CFG guider with MOFT latent guidance. The caller's MODEL is cloned, never modified.

    Attributes: losses {step: [weighted loss before each repeat]} of the last run."""

    def __init__(self, model_patcher, reference: MoftReference, config: MoftGuidanceConfig):
        if not isinstance(config, MoftGuidanceConfig):
            raise TypeError(f"config: expected MoftGuidanceConfig, got {type(config).__name__}")
        dm = model_patcher.model.diffusion_model
        adapter = detect(dm)
        check_reference(reference, adapter, adapter.fingerprint(dm), _layer_names(model_patcher))
        self.tap = FeatureTap(adapter, reference.layer)
        super().__init__(attach_hooks(model_patcher, [self.tap], layers=[reference.layer]))
        self.adapter, self.reference, self.config, self.losses = adapter, reference, config, {}

    def check(self, latent_image: torch.Tensor, sigmas: torch.Tensor) -> None:
        """Clear errors before any work: window, frame count, mask size."""
        self.config.guided_steps(sigmas.shape[-1] - 1)
        if latent_image.ndim != 5:
            raise ValueError(f"latent: expected a video latent [B, C, T, H, W], got {tuple(latent_image.shape)}")
        check_token_grid(self.reference, self.adapter.token_grid(latent_image.shape[-3:]))
        region_mask(self.config.mask, latent_image.shape[-3:], "mask")

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        self.losses = {}
        if self.config.weight != 0:
            self.check(latent_image, sigmas)
            if not isinstance(sampler, comfy.samplers.KSAMPLER):
                raise TypeError(f"sampler: MOFT guidance wraps ComfyUI's k-diffusion samplers (KSAMPLER), got "
                                f"{type(sampler).__name__}")
            sampler = MoftSampler(sampler, self)
        return super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)

    def guide(self, x: torch.Tensor, sigma: torch.Tensor, extra_args: dict, step: int) -> torch.Tensor:
        """`config.repeats` MOFT updates of the sampler's x at `sigma` (cond pass, stopped at the block)."""
        model = self.inner_model
        conds = [self.conds.get("positive")]
        opts = extra_args["model_options"]

        def features(xr):
            ts = sigma.to(xr.device).reshape(1).expand(xr.shape[0])
            return self.tap.features(lambda: comfy.samplers.calc_cond_batch(model, conds, xr, ts, opts))

        dm = model.diffusion_model
        blocks = [dm.get_submodule(lay.path) for lay in self.adapter.layers(dm)]
        with _grad_readable_weights(dm):  # also covers the backward, which recomputes checkpointed blocks
            x, losses = guide_latents(x, features, self.reference, self.config, self.adapter,
                                      latent_mask(self.config, x.shape), blocks)
        self.losses[step] = losses
        return x


class MoftSampler(comfy.samplers.Sampler):
    """Runs a KSAMPLER's sampler function in segments, guiding the latents before each guided step."""

    def __init__(self, inner: comfy.samplers.KSAMPLER, guider: MoftGuider):
        self.inner, self.guider = inner, guider

    def max_denoise(self, model_wrap, sigmas):
        return self.inner.max_denoise(model_wrap, sigmas)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        inner, n = self.inner, sigmas.shape[-1] - 1
        extra_args["denoise_mask"] = denoise_mask
        model_k = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
        model_k.latent_image, model_k.noise = latent_image, noise
        ms = model_wrap.inner_model.model_sampling
        x = ms.noise_scaling(sigmas[0], noise, latent_image, inner.max_denoise(model_wrap, sigmas))
        for a, b, guided in _segments(n, set(self.guider.config.guided_steps(n))):
            comfy.model_management.throw_exception_if_processing_interrupted()
            if guided:
                x = self.guider.guide(x, sigmas[a], extra_args, a)
            cb = None if callback is None else \
                (lambda d, a=a: callback(d["i"] + a, d["denoised"], d["x"], n))
            x = inner.sampler_function(model_k, x, sigmas[a:b + 1], extra_args=extra_args, callback=cb,
                                       disable=disable_pbar, **inner.extra_options)
        return ms.inverse_noise_scaling(sigmas[-1], x)


def _segments(n: int, guided: set[int]) -> list[tuple[int, int, bool]]:
    """[start, end) step ranges: each guided step alone, unguided runs merged."""
    out, a = [], 0
    for i in range(n):
        if i in guided:
            if a < i:
                out.append((a, i, False))
            out.append((i, i + 1, True))
            a = i + 1
    if a < n:
        out.append((a, n, False))
    return out


def moft_guider(model_patcher, positive, negative, cfg: float, reference, config) -> MoftGuider:
    """A MoftGuider with conditioning and CFG set (what the GUIDER node returns)."""
    guider = MoftGuider(model_patcher, reference, config)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    return guider


def moft_sample(model_patcher, positive, negative, latent: dict, seed: int, steps: int, cfg: float,
                sampler_name: str, scheduler: str, reference, config) -> tuple[dict, MoftGuider]:
    """One-node MOFT sampling with ComfyUI's own sampler and scheduler (KSampler's noise, preview and
    ProgressBar). Returns (LATENT, the guider with its losses)."""
    import latent_preview

    import comfy.sample
    import comfy.utils

    samples = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    guider = moft_guider(model_patcher, positive, negative, cfg, reference, config)
    sigmas = comfy.samplers.calculate_sigmas(model_patcher.get_model_object("model_sampling"), scheduler, steps)
    callback = latent_preview.prepare_callback(guider.model_patcher, steps)
    out = guider.sample(noise, samples, comfy.samplers.sampler_object(sampler_name), sigmas,
                        denoise_mask=latent.get("noise_mask"), callback=callback,
                        disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    result = latent.copy()
    result.pop("downscale_ratio_spacial", None)
    result["samples"] = out
    return result, guider


def channel_files() -> dict[str, str]:
    """`<model>.moft.json` files next to the diffusion models ComfyUI knows: {display name: path}."""
    import os

    import folder_paths

    from moaw_core.moft.channels import SUFFIX

    found = {}
    for base in folder_paths.get_folder_paths("diffusion_models"):
        if os.path.isdir(base):
            for name in sorted(os.listdir(base)):
                if name.endswith(SUFFIX):
                    found.setdefault(name, os.path.join(base, name))
    return found
