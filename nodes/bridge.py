"""ComfyUI glue for capture and injection (imports `comfy`; not a node module, defines no NODES).

- `attach_hooks(model_patcher, hooks)`: a CLONE whose injectable blocks call `hook.on_block(...)`. DiT
  families use `set_model_patch_replace(fn, "dit", <block>, i)` (wrapping any replace patch already there);
  SVD uses `input_block_patch` / `output_block_patch`. A DIFFUSION_MODEL wrapper (key "moaw") fills the hook
  context (latent grid, sigma, step, cond/uncond) once per model call; an OUTER_SAMPLE wrapper (key "moaw")
  resets per-run state before and, in `finally`, after every sampling run.
- `apply_injection(model_patcher, features, config)`: `attach_hooks` with one `InjectHook`.
- `ksample(...)`: KSampler's sampling (seeded noise, preview, progress) through `comfy.sample.sample`, so no node
  imports ComfyUI's top-level `nodes` module (a name this pack's own `nodes/` package shadows).
- `capture_comfy(...)`: training-free (one model call per chosen sigma on the noised source latent) or
  tracker (the tracker's own sampling, source latents concatenated at the model input) -> MotionFeatures.

Big tensors never enter `model_options`: the patches hold a `_Binding` whose `__deepcopy__` returns itself,
so `clone()` shares it; the caller's ModelPatcher is never modified.
"""
from __future__ import annotations

import logging

import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
from comfy.patcher_extension import WrappersMP

from moaw_core.engine.adapters import check_compatible, detect
from moaw_core.engine.features import MotionFeatures
from moaw_core.engine.hooks import CaptureHook, HookContext, InjectHook, reset_after_run_hooks
from moaw_core.engine.inject import InjectConfig, active_steps, step_index

KEY = "moaw"
log = logging.getLogger("moaw")


class _Binding:
    """Hooks, adapter and the per-call context of one patched model. Shared (not copied) by clone()."""

    def __init__(self, adapter, hooks, source_concat=None):
        self.adapter, self.hooks, self.source_concat = adapter, list(hooks), source_concat
        self.ctx = HookContext()

    def __deepcopy__(self, memo):
        return self

    def reset(self):
        self.ctx = HookContext()
        reset_after_run_hooks(self.hooks)

    def begin_call(self, x, transformer_options: dict, num_frames=None):
        ctx = HookContext(latent_grid=self.adapter.latent_grid(x, num_frames))
        sig = transformer_options.get("sigmas")
        if sig is not None:
            ctx.sigma = float(sig.flatten()[0])
            sample = transformer_options.get("sample_sigmas")
            if sample is not None:
                sample = sample.detach().float().cpu()
                ctx.step, ctx.n_steps = step_index(ctx.sigma, sample), len(sample) - 1
        cu = transformer_options.get("cond_or_uncond")
        ctx.cond_or_uncond = tuple(cu) if cu is not None else None
        self.ctx = ctx

    def warn_if_window_empty(self, n_steps: int) -> None:
        """Log (not raise: this MODEL may serve other samplers) when a run's steps miss the injection window."""
        for h in self.hooks:
            cfg = getattr(h, "config", None)
            if isinstance(h, InjectHook) and n_steps > 0 and not active_steps(n_steps, cfg.start, cfg.end):
                log.warning("Moaw injection: the window [%s, %s) contains none of this run's %d steps, so nothing "
                            "is injected; widen start/end or use more steps", cfg.start, cfg.end, n_steps)

    def run(self, layer: str, hidden: torch.Tensor) -> torch.Tensor:
        for h in self.hooks:
            hidden = h.on_block(layer, hidden, self.ctx)
        return hidden

    # ---- wrappers ----------------------------------------------------------------------------------------
    def diffusion_model_wrapper(self, executor, *args, **kwargs):
        x = args[0]
        opts = kwargs.get("transformer_options")
        if opts is None:
            opts = next((a for a in args if isinstance(a, dict) and "sigmas" in a), {})
        self.begin_call(x, opts, kwargs.get("num_video_frames"))
        if self.source_concat is not None:
            args = (self._concat(x),) + tuple(args[1:])
        return executor(*args, **kwargs)

    def _concat(self, x):
        """Tracker conditioning: source latents on the channel axis after the noisy track latents. When the
        host already padded the input to the projection's width (Wan's concat_cond adds zeros), the padding
        is replaced."""
        src = self.source_concat.to(device=x.device, dtype=x.dtype)
        src = src.expand(x.shape[0], *src.shape[1:]) if src.shape[0] == 1 else src
        if src.shape[0] != x.shape[0] or src.shape[2:] != x.shape[2:]:
            raise ValueError(f"tracker source latent {tuple(self.source_concat.shape)} does not match the model "
                             f"input {tuple(x.shape)} (batch, frames and size must agree)")
        c_in, c_src = self.in_channels, src.shape[1]
        if x.shape[1] == c_in and c_in > c_src:
            x = x[:, :c_in - c_src]
        if x.shape[1] + c_src != c_in:
            raise ValueError(f"tracker input projection takes {c_in} channels; track latents ({x.shape[1]}) + "
                             f"source latents ({c_src}) do not add up")
        return torch.cat([x, src], dim=1)

    def outer_sample_wrapper(self, executor, *args, **kwargs):
        self.reset()
        sigmas = args[3] if len(args) > 3 else kwargs.get("sigmas")
        if sigmas is not None:
            self.warn_if_window_empty(len(sigmas) - 1)
        try:
            return executor(*args, **kwargs)
        finally:
            self.reset()


class _BlockPatch:
    """`set_model_patch_replace` callable for DiT blocks: runs the block (or the patch it replaced), then hooks."""

    def __init__(self, binding: _Binding, layer: str, prev=None):
        self.binding, self.layer, self.prev = binding, layer, prev

    def __deepcopy__(self, memo):
        return self

    def __call__(self, args, extra):
        out = self.prev(args, extra) if self.prev is not None else extra["original_block"](args)
        out["img"] = self.binding.run(self.layer, out["img"])
        return out


class _UNetPatch:
    """`input_block_patch` / `output_block_patch` callable for openaimodel U-Nets (SVD)."""

    def __init__(self, binding: _Binding, kind: str):
        self.binding, self.kind = binding, kind

    def __deepcopy__(self, memo):
        return self

    def __call__(self, h, *rest):
        opts = rest[-1]
        i = opts["block"][1]
        if self.kind == "input":
            return self.binding.run(f"input.{i}", h)
        hsp = rest[0]
        return self.binding.run("middle.0" if i == 0 else f"output.{i - 1}", h), hsp


def _remove_ours(m) -> None:
    """Drop a previous Moaw binding from clone `m` (re-applying replaces it)."""
    m.remove_wrappers_with_key(WrappersMP.OUTER_SAMPLE, KEY)
    m.remove_wrappers_with_key(WrappersMP.DIFFUSION_MODEL, KEY)
    to = m.model_options.setdefault("transformer_options", {})
    for name in ("input_block_patch", "output_block_patch"):
        if name in to.get("patches", {}):
            to["patches"][name] = [p for p in to["patches"][name] if not isinstance(p, _UNetPatch)]
    dit = to.get("patches_replace", {}).get("dit", {})
    for key, p in list(dit.items()):
        if isinstance(p, _BlockPatch):
            if p.prev is None:
                del dit[key]
            else:
                dit[key] = p.prev


def attach_hooks(model_patcher, hooks, layers=None, source_concat: torch.Tensor | None = None):
    """A clone of `model_patcher` whose `layers` (default: all the adapter's layers) call `hooks`.

    Args:
        model_patcher: ComfyUI MODEL. hooks: CaptureHook / InjectHook objects (on_block + reset).
        layers: canonical layer names to patch. source_concat: optional `[1 or B, C_src, ...]` tensor
            concatenated to the model input on the channel axis (tracker conditioning), already in the model's
            latent space (`process_latent_in` applied).
    Returns the patched clone; its attachment "moaw" is the binding.
    """
    dm = model_patcher.model.diffusion_model
    adapter = detect(dm)
    known = {layer.name: layer for layer in adapter.layers(dm)}
    layers = list(known) if layers is None else list(layers)
    if not layers:
        raise ValueError("attach_hooks: empty layer selection")
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"unknown layer name(s) {unknown} for {adapter.name}; valid: {_summary(list(known))}")
    binding = _Binding(adapter, hooks, source_concat)
    if source_concat is not None:
        binding.in_channels = adapter.in_channels(dm)
    m = model_patcher.clone()
    _remove_ours(m)
    dit = m.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
    unet = set()
    for name in layers:
        patch = known[name].patch
        if patch[0] == "dit":
            m.set_model_patch_replace(_BlockPatch(binding, name, dit.get(patch[1:])), "dit", patch[1], patch[2])
        else:
            unet.add(patch[0])
    if "input_block_patch" in unet:
        m.set_model_input_block_patch(_UNetPatch(binding, "input"))
    if "output_block_patch" in unet:
        m.set_model_output_block_patch(_UNetPatch(binding, "output"))
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, KEY, binding.diffusion_model_wrapper)
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, KEY, binding.outer_sample_wrapper)
    m.set_attachments(KEY, binding)
    return m


def apply_injection(model_patcher, features: MotionFeatures, config: InjectConfig):
    """A clone of `model_patcher` that injects `features` per `config` while it samples.

    Raises ValueError for features from another architecture / width / block structure, an empty or unknown
    layer selection, or NaN in the features. The caller's model is not modified."""
    if not isinstance(features, MotionFeatures):
        raise TypeError(f"apply_injection: features must be MotionFeatures, got {type(features).__name__}")
    if not isinstance(config, InjectConfig):
        raise TypeError(f"apply_injection: config must be InjectConfig, got {type(config).__name__}")
    dm = model_patcher.model.diffusion_model
    adapter = detect(dm)
    check_compatible(features.fingerprint, adapter.fingerprint(dm))
    features.validate()
    hook = InjectHook(features, config, adapter)
    return attach_hooks(model_patcher, [hook], layers=hook.layers)


def ksample(model_patcher, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive, negative,
            latent: dict, denoise: float = 1.0) -> dict:
    """What ComfyUI's KSampler node does, through the public `comfy.sample` API: seeded noise (per `batch_index`),
    the latent's `noise_mask`, latent previews and the ProgressBar. Returns the output LATENT (a copy of `latent`
    with new `samples`)."""
    import latent_preview  # ComfyUI's preview/progress callback (top-level module of the host, not shadowed)

    samples = comfy.sample.fix_empty_latent_channels(model_patcher, latent["samples"])
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model_patcher, steps)
    out = comfy.sample.sample(model_patcher, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                              denoise=denoise, noise_mask=latent.get("noise_mask"), callback=callback,
                              disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    result = latent.copy()
    result["samples"] = out
    return result


def capture_comfy(model_patcher, latent, positive, negative, sigmas, layers, seed: int = 0,
                  mode: str = "training_free", source_concat=None, cfg: float = 1.0,
                  dtype: torch.dtype = torch.float16, branch: str = "cond", sampler_name: str = "euler",
                  source: str = "", return_samples: bool = False, zero_noise: bool = False,
                  noise: torch.Tensor | None = None):
    """Capture `layers` of a ComfyUI MODEL into MotionFeatures.

    Args:
        model_patcher: the generator (training-free) or the tracker MODEL.
        latent: LATENT dict or samples tensor (ComfyUI layout, e.g. Wan `[B, 16, T, H, W]`). Training-free: the
            source video latent. Tracker: the track latent to sample (usually empty/zeros, output channels).
        positive, negative: CONDITIONING (negative is only evaluated when cfg != 1).
        sigmas: descending noise levels, a 1-D tensor / list (training-free: the steps to capture, a trailing 0
            is ignored; tracker: the full sampling schedule), or an int number of steps ("simple" scheduler).
        layers: canonical layer names. seed: noise seed. mode: "training_free" | "tracker".
        source_concat: tracker mode: the source video LATENT (dict or tensor, as from VAEEncode) concatenated at
            the model input on the channel axis. cfg: guidance for the capture passes.
        dtype: storage dtype (fp16 default). branch: "cond" (store the positive pass) or "both".
        zero_noise: tracker mode: start from zeros instead of Gaussian noise (one-step regression trackers,
            recorded as `init_noise: zeros` in their schedule).
        noise: the noise to use instead of seeded Gaussian noise (same shape as the latent).
    Returns:
        MotionFeatures (and the final samples / x0 prediction when `return_samples`).
    """
    if mode not in ("training_free", "tracker"):
        raise ValueError(f"capture_comfy: mode must be 'training_free' or 'tracker', got {mode!r}")
    samples = latent["samples"] if isinstance(latent, dict) else latent
    samples = comfy.sample.fix_empty_latent_channels(model_patcher, samples)
    dm = model_patcher.model.diffusion_model
    adapter = detect(dm)
    sigmas = _schedule(model_patcher, sigmas, mode)
    cap = CaptureHook(adapter, layers, dtype=dtype, branch=branch)
    src = None
    if mode == "tracker":
        # source_concat=None: the conditioning carries the source (e.g. Wan's native `concat_latent_image`).
        if source_concat is not None:
            src = source_concat["samples"] if isinstance(source_concat, dict) else source_concat
            src = model_patcher.model.process_latent_in(src.float())
    elif source_concat is not None:
        raise ValueError("capture_comfy: source_concat is only used in mode='tracker'")
    m = attach_hooks(model_patcher, [cap], layers=layers, source_concat=src)
    guider = comfy.samplers.CFGGuider(m)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    sampler = comfy.samplers.KSAMPLER(_one_call_per_sigma) if mode == "training_free" \
        else comfy.samplers.sampler_object(sampler_name)
    if noise is None:
        noise = torch.zeros_like(samples) if zero_noise else comfy.sample.prepare_noise(samples, seed)
    elif tuple(noise.shape) != tuple(samples.shape):
        raise ValueError(f"capture_comfy: noise {tuple(noise.shape)} must have the latent's shape {tuple(samples.shape)}")
    pbar = comfy.utils.ProgressBar(len(sigmas) - 1)
    out = guider.sample(noise, samples, sampler, sigmas, callback=lambda i, *_: _tick(pbar, i, len(sigmas) - 1),
                        disable_pbar=True, seed=seed)
    feats = cap.to_features(adapter.fingerprint(dm), tuple(samples.shape), source or f"comfy {mode} capture",
                            sigmas=[float(s) for s in sigmas[:-1]])
    feats.extra.update({"mode": mode, "seed": int(seed), "cfg": float(cfg)})
    return (feats, out) if return_samples else feats


def _tick(pbar, i, total):
    comfy.model_management.throw_exception_if_processing_interrupted()
    pbar.update_absolute(i + 1, total)


def _schedule(model_patcher, sigmas, mode) -> torch.Tensor:
    if isinstance(sigmas, int):
        ms = model_patcher.get_model_object("model_sampling")
        sigmas = comfy.samplers.calculate_sigmas(ms, "simple", sigmas)
    sigmas = torch.as_tensor(sigmas, dtype=torch.float32).flatten().cpu()
    if sigmas.numel() == 0 or not torch.isfinite(sigmas).all():
        raise ValueError(f"capture_comfy: sigmas must be a non-empty finite list, got {sigmas.tolist()}")
    if mode == "training_free":
        sigmas = sigmas[sigmas > 0]
        if sigmas.numel() == 0:
            raise ValueError("capture_comfy: no positive sigma to capture at")
        sigmas = torch.cat([sigmas, sigmas.new_zeros(1)])
    elif sigmas.numel() < 2:
        raise ValueError("capture_comfy: tracker mode needs a schedule of at least 2 sigmas")
    return sigmas


@torch.no_grad()
def _one_call_per_sigma(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """KSAMPLER function: for each sigma (but the trailing 0), noise the clean latent to it with the sampler's
    own noise and run the model once. Returns the last x0 prediction."""
    extra_args = extra_args or {}
    ms = model.inner_model.inner_model.model_sampling
    s_in = x.new_ones([x.shape[0]])
    denoised = x
    for i in range(len(sigmas) - 1):
        comfy.model_management.throw_exception_if_processing_interrupted()
        xi = ms.noise_scaling(sigmas[i], model.noise, model.latent_image)
        denoised = model(xi, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": xi, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
    return denoised


def _summary(names):
    return names if len(names) <= 8 else names[:4] + ["..."] + names[-2:]
