"""ComfyUI glue for DeT (imports `comfy`; not a node module, defines no NODES).

- `apply_det(model, adapters, ...)`: a CLONE whose chosen blocks' self-attention modules are swapped for
  `moaw_core.det.placement.DeTAttention` through `add_object_patch` (same parameter paths, so LoRAs and weight
  patches still find their keys). A DIFFUSION_MODEL wrapper (key "moaw_det") records each call's token grid; an
  OUTER_SAMPLE wrapper drops per-run device copies in `finally`. The caller's ModelPatcher is never modified.
- `train_det_comfy(...)`: core's in-graph training pattern (`comfy_extras/nodes_train.py`): clone,
  `torch.inference_mode(False)`, a `comfy.samplers.Sampler` subclass driven by `Guider_Basic`, whose `sample`
  runs `moaw_core.det.train.train_adapters` with ComfyUI's own denoiser (x0 prediction, conditioning included:
  image-to-video concat conditioning arrives through the CONDITIONING like in sampling) and its own schedule.
"""
from __future__ import annotations

import copy
import time

import torch

import comfy.model_management
import comfy.samplers
import comfy.utils
from comfy.patcher_extension import WrappersMP

from moaw_core.det.adapter import DeTAdapters, first_fraction
from moaw_core.det.placement import DeTAttention, attention_paths, check_adapters
from moaw_core.det.train import DeTTrainConfig, DeTTrainState, train_adapters
from moaw_core.engine.adapters import detect

KEY = "moaw_det"


class _Binding:
    """Adapters, scale and the current call's token grid of one patched model. Shared (not copied) by clone()."""

    def __init__(self, adapters: DeTAdapters, adapter, scale: float):
        self.adapters, self.adapter, self.scale = adapters, adapter, float(scale)
        self.token_grid = None
        self._copies: dict = {}

    def __deepcopy__(self, memo):
        return self

    def adapters_for(self, device) -> DeTAdapters:
        """The adapters on `device`: themselves when already there (training), else a per-run copy."""
        if next(self.adapters.parameters()).device == device:
            return self.adapters
        if device not in self._copies:
            self._copies[device] = copy.deepcopy(self.adapters).to(device)
        return self._copies[device]

    def diffusion_model_wrapper(self, executor, *args, **kwargs):
        x = args[0]
        self.token_grid = self.adapter.token_grid(self.adapter.latent_grid(x))
        try:
            return executor(*args, **kwargs)
        finally:
            self.token_grid = None

    def outer_sample_wrapper(self, executor, *args, **kwargs):
        try:
            return executor(*args, **kwargs)
        finally:
            self._copies.clear()
            self.token_grid = None


def _remove_ours(m) -> None:
    m.remove_wrappers_with_key(WrappersMP.OUTER_SAMPLE, KEY)
    m.remove_wrappers_with_key(WrappersMP.DIFFUSION_MODEL, KEY)
    for key, obj in list(m.object_patches.items()):
        if isinstance(obj, DeTAttention):
            m.object_patches[key] = obj._inner  # patching a module with itself is a no-op


def apply_det(model_patcher, adapters: DeTAdapters, fraction: float = 0.35, layers=None, scale: float = 1.0):
    """A clone of `model_patcher` with DeT adapters in the first `fraction` of the adapters' blocks (or `layers`).

    Raises TypeError for an unsupported model family, ValueError for adapters of another family or width, or
    unknown layers. Re-applying to a DeT-patched model replaces the previous adapters."""
    if not isinstance(adapters, DeTAdapters):
        raise TypeError(f"adapters: expected DeT adapters (MOAW_DET), got {type(adapters).__name__}")
    dm = model_patcher.model.diffusion_model
    adapter = detect(dm)
    check_adapters(adapters, adapter, dm)
    chosen = list(layers) if layers is not None else first_fraction(adapters.layer_names, fraction)
    for name in chosen:
        adapters.module(name)
    paths = attention_paths(adapter, dm, chosen)
    m = model_patcher.clone()
    _remove_ours(m)
    binding = _Binding(adapters, adapter, scale)
    for layer, path in paths.items():
        key = f"diffusion_model.{path}"
        inner = m.get_model_object(key)
        inner = inner._inner if isinstance(inner, DeTAttention) else inner
        m.add_object_patch(key, DeTAttention(inner, layer, binding))
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, KEY, binding.diffusion_model_wrapper)
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, KEY, binding.outer_sample_wrapper)
    m.set_attachments(KEY, binding)
    return m


class DeTTrainSampler(comfy.samplers.Sampler):
    """Runs the whole DeT training inside one `sample` call, as core's TrainSampler does for LoRAs."""

    def __init__(self, adapters, config: DeTTrainConfig, tracks, state, progress):
        self.adapters, self.config, self.tracks, self.state, self.progress = adapters, config, tracks, state, progress

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ms = model_wrap.inner_model.model_sampling
        x0 = latent_image

        def denoise(x_t, sigma):
            return model_wrap(x_t, sigma, **extra_args)

        self.state = train_adapters(denoise, x0, self.adapters, self.config, self.tracks,
                                    sigma_of=lambda u: float(ms.percent_to_sigma(1.0 - u)), state=self.state,
                                    progress=self.progress)
        return torch.zeros_like(latent_image)


def _identity(w):
    return w


def _clone_tensors(obj):
    """Conditioning with every tensor cloned (tensors made under inference mode cannot enter autograd)."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_tensors(v) for v in obj)
    return obj


def _copy_weights_per_call(m) -> None:
    """ComfyUI loads weights under inference mode; autograd cannot save such tensors. As core's TrainLoraNode does
    (its LoRA wrappers), give every weight a (here: identity) weight wrapper on the training clone, so ComfyUI's
    cast path hands each op a fresh copy. Only when the weights really are inference tensors."""
    if not any(p.is_inference() for p in m.model.parameters()):
        return
    for name, module in m.model.named_modules():
        if hasattr(module, "weight_function"):
            for part in ("weight", "bias"):
                if getattr(module, part, None) is not None:
                    m.add_weight_wrapper(f"{name}.{part}", _identity)


def train_det_comfy(model_patcher, latent, positive, config: DeTTrainConfig, tracks=None,
                    adapters: DeTAdapters | None = None, state: DeTTrainState | None = None, progress=None):
    """Train DeT adapters on a source LATENT with the base frozen. Returns (adapters, state, seconds).

    Args:
        model_patcher: the MODEL (not modified). latent: LATENT dict of the source video (VAEEncode output).
        positive: CONDITIONING of the source (text, or image-to-video conditioning from WanImageToVideo).
        tracks: LatentTracks (required when config.track_weight > 0). adapters/state: resume from a file.
        progress: progress(step, total, record); raising in it stops training (cancel).
    """
    samples = latent["samples"] if isinstance(latent, dict) else latent
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5:
        raise ValueError(f"latent: expected a video LATENT [B, C, T, H, W], got "
                         f"{tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__}")
    if samples.shape[0] != 1:
        raise ValueError(f"latent: DeT trains on one source video (batch 1), got batch {samples.shape[0]}")
    dm = model_patcher.model.diffusion_model
    adapter = detect(dm)
    t0 = time.perf_counter()
    with torch.inference_mode(False):
        if adapters is None:
            names = [layer.name for layer in adapter.layers(dm)]
            adapters = DeTAdapters(adapter.width(dm), names, adapter.family, adapter.fingerprint(dm),
                                   seed=config.seed)
        else:
            adapters = copy.deepcopy(adapters)  # the loaded adapters stay as they were
        m = apply_det(model_patcher, adapters, layers=adapters.layer_names)
        _copy_weights_per_call(m)
        trainable = [p for p in m.model.parameters() if p.requires_grad and not p.is_inference()]
        m.model.requires_grad_(False)  # base frozen: no weight gradients; the flags are restored below
        try:
            comfy.model_management.load_models_gpu([m], force_full_load=True)
            adapters.to(m.load_device)
            if tracks is not None:  # made under the node's inference mode: indices must enter autograd
                tracks = type(tracks)(*(t.clone() for t in (tracks.frames, tracks.y, tracks.x, tracks.weight)))
            sampler = DeTTrainSampler(adapters, config, tracks, state, progress)
            guider = comfy.samplers.CFGGuider(m)
            guider.inner_set_conds({"positive": _clone_tensors(positive)})
            x0 = samples.float().clone()
            guider.sample(torch.zeros_like(x0), x0, sampler, torch.tensor([1.0, 0.0]), seed=config.seed,
                          disable_pbar=True)
        finally:
            for p in trainable:
                p.requires_grad_(True)
        adapters.cpu().requires_grad_(False)
    return adapters, sampler.state, time.perf_counter() - t0


def train_det_node(model_patcher, latent, positive, config: DeTTrainConfig, video=None, tracker: str = "lk",
                   points: int = 100, mask=None, resume=None, fraction: float = 0.35):
    """What the training node does: tracks (when a tracker is chosen), training with a ProgressBar per step and
    cancellation, then (MODEL clone with the adapters in the first `fraction` of blocks, TrainedDeT, loss graph)."""
    from dataclasses import asdict, replace

    from moaw_core.det.files import TrainedDeT
    from moaw_core.det.plot import loss_graph
    from moaw_core.det.tracks import tracks_for_latent

    samples = latent["samples"] if isinstance(latent, dict) else latent
    tracks = None
    if tracker == "none":
        config = replace(config, track_weight=0.0)
    elif config.track_weight > 0:
        if video is None:
            raise ValueError(f"source_video: the tracking loss (tracker {tracker!r}) needs the source frames; connect "
                             f"the IMAGE that was encoded, or choose tracker 'none'")
        m2 = None if mask is None else (mask[0] > 0.5).cpu().numpy()
        tracks = tracks_for_latent(video, samples.shape, tracker, points, m2, config.seed)
    adapters = resume.adapters if resume is not None else None
    state = copy.deepcopy(resume.state) if resume is not None else None
    if state is not None and state.step >= config.steps:
        raise ValueError(f"steps: the resumed adapters already ran {state.step} steps; ask for more than that")
    pbar = comfy.utils.ProgressBar(config.steps)

    def progress(step, total, rec):
        comfy.model_management.throw_exception_if_processing_interrupted()
        pbar.update_absolute(step, total)

    adapters, state, seconds = train_det_comfy(model_patcher, latent, positive, config, tracks, adapters, state,
                                               progress)
    info = {"config": asdict(config), "seconds": round(seconds, 3), "tracker": tracker, "points": points,
            "latent_shape": list(samples.shape), "host": "comfyui"}
    if resume is not None:
        info["seconds"] = round(seconds + float(resume.info.get("seconds", 0.0)), 3)
    trained = TrainedDeT(adapters, info, state)
    return apply_det(model_patcher, adapters, fraction), trained, loss_graph(state.losses)
