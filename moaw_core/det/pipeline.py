"""DeT with diffusers models: build adapters for a model, train them on one source video, sample with them.
The CLI verb (`det`), the demo and the benchmark call these; ComfyUI does the same through `nodes/det_bridge.py`.

Conditioning is pluggable: `condition(x_t, x0) -> model input` (default: x_t itself, text-to-video).
`first_frame_concat` is the image-to-video form (Wan I2V's `in_dim = C + 4 + C`): x_t, then a 4-channel mask
that is 1 on latent frame 0, then the clean first-frame latent followed by zeros.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

from moaw_core.det.adapter import DeTAdapters, first_fraction
from moaw_core.det.placement import attach_det, attention_paths
from moaw_core.det.tracks import LatentTracks
from moaw_core.det.train import DeTTrainConfig, DeTTrainState, train_adapters
from moaw_core.engine.adapters import detect
from moaw_core.engine.schedule import shift_sigma
from moaw_core.tracking.tracker import backbone_forward


def adapters_for(model: nn.Module, layers=None, hidden: int = 128, seed: int = 0) -> DeTAdapters:
    """Fresh (identity) DeT adapters for every block of `model` (or `layers`)."""
    adapter = detect(model)
    names = [layer.name for layer in adapter.layers(model)] if layers is None else list(layers)
    attention_paths(adapter, model, names)  # raises for unsupported families / unknown blocks
    return DeTAdapters(adapter.width(model), names, adapter.family, adapter.fingerprint(model), hidden=hidden,
                       seed=seed)


def first_frame_concat(x_t: torch.Tensor, x0: torch.Tensor, mask_channels: int = 4) -> torch.Tensor:
    """Image-to-video input: [x_t, mask (1 at latent frame 0), first-frame latent then zeros] on channels."""
    b, _, t, h, w = x0.shape
    mask = x0.new_zeros(b, mask_channels, t, h, w)
    mask[:, :, 0] = 1
    image = torch.zeros_like(x0)
    image[:, :, 0] = x0[:, :, 0]
    return torch.cat([x_t, mask, image], dim=1)


def make_denoise(model: nn.Module, x0: torch.Tensor, condition: Callable | None = None):
    """(x_t, sigma [B]) -> x0_pred for a flow-matching diffusers backbone (v-prediction: x0 = x_t - s v)."""
    def denoise(x_t, sigma):
        inp = x_t if condition is None else condition(x_t, x0)
        v = backbone_forward(model, inp, sigma * 1000.0)
        return x_t - sigma.view(-1, 1, 1, 1, 1).to(x_t.dtype) * v.to(x_t.dtype)
    return denoise


def train_det(model: nn.Module, x0: torch.Tensor, config: DeTTrainConfig = DeTTrainConfig(),
              tracks: LatentTracks | None = None, adapters: DeTAdapters | None = None,
              state: DeTTrainState | None = None, shift: float = 1.0, condition: Callable | None = None,
              progress=None, accelerator=None, on_checkpoint=None, checkpoint_every: int = 0):
    """Train DeT adapters for `model` (frozen) on the source latent `x0` [1, C, T, H, W].

    Returns (adapters, state, seconds). Pass `adapters` and `state` from a checkpoint to resume."""
    p = next(model.parameters())
    model.requires_grad_(False)
    x0 = x0.to(p.device, p.dtype)
    adapters = adapters if adapters is not None else adapters_for(model, seed=config.seed)
    adapters.to(p.device)
    t0 = time.perf_counter()
    with attach_det(model, adapters):
        state = train_adapters(make_denoise(model, x0, condition), x0, adapters, config, tracks,
                               sigma_of=lambda u: float(shift_sigma(torch.tensor(u), shift)), state=state,
                               progress=progress, accelerator=accelerator, on_checkpoint=on_checkpoint,
                               checkpoint_every=checkpoint_every)
    return adapters, state, time.perf_counter() - t0


@torch.no_grad()
def generate_det(model: nn.Module, adapters: DeTAdapters | None, shape, seed: int = 0, steps: int = 20,
                 shift: float = 1.0, fraction: float = 0.35, layers=None, scale: float = 1.0) -> torch.Tensor:
    """Sample with the adapters loaded into the first `fraction` of blocks (or `layers`); adapters None = plain.
    Same noise for the same seed as `moaw_core.engine.transfer.generate`. Returns latents [B, C, T, H, W]."""
    from moaw_core.engine.transfer import generate

    if adapters is None:
        return generate(model, shape, seed=seed, steps=steps, shift=shift)
    chosen = list(layers) if layers is not None else first_fraction(adapters.layer_names, fraction)
    with attach_det(model, adapters, chosen, scale=scale):
        return generate(model, shape, seed=seed, steps=steps, shift=shift)


def train_on_video(generator: nn.Module, codec, video: torch.Tensor, config: DeTTrainConfig = DeTTrainConfig(),
                   tracker: str = "lk", points: int = 100, mask=None, shift: float = 1.0, resume=None,
                   progress=None, accelerator=None, on_checkpoint=None, checkpoint_every: int = 0, source: str = "",
                   condition: Callable | None = None):
    """The whole per-video DeT job for a diffusers generator and a latent codec (what the CLI and the demo call).

    Args:
        generator: diffusers backbone (frozen). codec: has encode(video) -> [1, C, T', h, w] and temporal_factor.
        video: source [T, H, W, 3] in [0, 1]. tracker: "lk" | "dis" | "cotracker" | "none" (diffusion loss only).
        resume: a TrainedDeT to continue (its optimiser state and step count).
        condition: (x_t, x0) -> model input, e.g. an image-to-video condition (`moaw_core.det.i2v.train_i2v`).
    Returns:
        TrainedDeT (adapters, info with seconds / settings / tracker, state with the loss log).
    """
    from dataclasses import asdict, replace

    from moaw_core.det.files import TrainedDeT
    from moaw_core.det.tracks import latent_tracks, source_tracks

    x0 = codec.encode(video)
    tracks = None
    t0 = time.perf_counter()
    if tracker == "none":
        config = replace(config, track_weight=0.0)
    elif config.track_weight > 0:
        pts, vis = source_tracks(video, tracker, points, mask, config.seed)
        tracks = latent_tracks(pts, vis, tuple(video.shape[1:3]), tuple(x0.shape[2:]),
                               getattr(codec, "temporal_factor", 1))
    t_tracks = time.perf_counter() - t0
    adapters, state, seconds = train_det(generator, x0, config, tracks,
                                         adapters=resume.adapters if resume is not None else None,
                                         state=resume.state if resume is not None else None, shift=shift,
                                         condition=condition, progress=progress, accelerator=accelerator,
                                         on_checkpoint=on_checkpoint, checkpoint_every=checkpoint_every)
    before = float(resume.info.get("seconds", 0.0)) if resume is not None else 0.0
    info = {"config": asdict(config), "seconds": round(before + seconds + t_tracks, 3),
            "seconds_tracking": round(t_tracks, 3), "tracker": tracker, "points": points,
            "latent_shape": list(x0.shape), "host": "diffusers", "source": source}
    return TrainedDeT(adapters.cpu(), info, state)
