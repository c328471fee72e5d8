"""The per-video DeT training loop, host-agnostic: the host supplies `denoise(x_t, sigma) -> x0_pred` (its own
model with the adapters placed, base frozen) and `sigma_of(u)` (its timestep schedule); this file owns the
losses, the optimiser, resuming and progress.

Recipe (DeT, `../shared/METHODS.md`): AdamW lr 1e-5, betas (0.9, 0.95), weight decay 1e-4, constant lr, batch 1,
grad-clip 1.0, 500 steps. Loss = x0-MSE weighted 1/(1 - alpha_bar_t), plus 0.1 x the tracking loss at t <= 400/1000.
Flow-matching translation (the Wan / ComfyUI parameterisation x_t = (1 - s) x0 + s noise): the weight is 1/s^2,
which makes the term exactly the velocity MSE (x0_pred - x0 = -s (v_pred - v)); "t <= 400" is s <= 0.4 (the model
timestep is 1000 s). The timestep is drawn uniformly, u = t/1000 ~ U(0, 1) (0 clean, 1 pure noise), and mapped to a
noise level by the host's own schedule, s = sigma_of(u) (its shift included); "t <= 400" is u <= 0.4, i.e. the
tracking term is active in 40 % of the steps as in the paper, whatever the shift. The noise of step i depends only
on (seed, i, rank), so a resumed run continues the same sequence.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from moaw_core.det.adapter import DeTAdapters
from moaw_core.det.tracks import LatentTracks, tracking_loss


@dataclass(frozen=True)
class DeTTrainConfig:
    """steps: optimiser steps (the paper: 500). lr, betas, weight_decay: AdamW. grad_clip: max grad norm (0: off).
    track_weight: weight of the tracking loss (0: off). track_max_t: tracking loss only when the drawn timestep
    u = t/1000 <= this (the paper's t <= 400). min_sigma: lower bound of sampled sigmas (keeps 1/s^2 finite). seed: noise seed."""

    steps: int = 500
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    track_weight: float = 0.1
    track_max_t: float = 0.4
    min_sigma: float = 1e-3
    seed: int = 0

    def validate(self) -> "DeTTrainConfig":
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"steps: expected an int >= 1, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, got {self.lr}")
        if self.track_weight < 0 or not 0 <= self.track_max_t <= 1:
            raise ValueError(f"track_weight >= 0 and track_max_t in [0, 1] expected, got "
                             f"{self.track_weight}, {self.track_max_t}")
        return self


@dataclass
class DeTTrainState:
    """What a resumed run needs: steps done, the optimiser's state dict, the loss log."""

    step: int = 0
    optimizer: dict | None = None
    losses: list[dict] = field(default_factory=list)


def make_optimizer(adapters: DeTAdapters, config: DeTTrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(adapters.parameters(), lr=config.lr, betas=tuple(config.betas),
                             weight_decay=config.weight_decay)


def step_loss(denoise, x0: torch.Tensor, sigma: float, noise: torch.Tensor, config: DeTTrainConfig,
              tracks: LatentTracks | None, track_on: bool = True) -> tuple[torch.Tensor, dict]:
    """Loss of one (sigma, noise) draw; the tracking term only when `track_on` (low noise). x0, noise
    [B, C, T, H, W]. Returns (loss, {"diffusion", "tracking"})."""
    s = max(float(sigma), config.min_sigma)
    x_t = (1 - s) * x0 + s * noise
    x0_pred = denoise(x_t, torch.full((x0.shape[0],), s, device=x0.device, dtype=x0.dtype))
    diff = ((x0_pred.float() - x0.float()) ** 2).mean() / (s * s)
    loss, track = diff, torch.zeros((), device=diff.device)
    if tracks is not None and config.track_weight > 0 and track_on:
        track = tracking_loss(x0_pred, tracks)
        loss = loss + config.track_weight * track
    return loss, {"diffusion": float(diff.detach()), "tracking": float(track.detach())}


def _draw(config: DeTTrainConfig, step: int, rank: int, x0: torch.Tensor, sigma_of):
    """(u, sigma, noise) of one step."""
    g = torch.Generator().manual_seed(int(config.seed) * 1_000_003 + step * 101 + rank)
    u = float(torch.rand((), generator=g))
    noise = torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype)
    return u, float(sigma_of(u)), noise


def train_adapters(denoise: Callable, x0: torch.Tensor, adapters: DeTAdapters, config: DeTTrainConfig,
                   tracks: LatentTracks | None = None, sigma_of: Callable[[float], float] = lambda u: u,
                   state: DeTTrainState | None = None, progress: Callable[[int, int, dict], None] | None = None,
                   accelerator=None, on_checkpoint: Callable[[DeTTrainState], None] | None = None,
                   checkpoint_every: int = 0) -> DeTTrainState:
    """Train `adapters` (in place) on one source latent.

    Args:
        denoise: (x_t [B, C, T, H, W], sigma [B]) -> x0_pred, through the host model with the adapters placed.
        x0: clean source latent [B, C, T, H, W] in the model's latent space.
        tracks: LatentTracks of the source; required when config.track_weight > 0.
        sigma_of: u = t/1000 in (0, 1) -> sigma (the host's schedule, shift included).
        state: a previous run's state to resume (its optimiser state and step count are restored).
        progress: called after every step as progress(step, total, record); it may raise to cancel.
        accelerator: an `accelerate.Accelerator` for several processes: each draws its own (sigma, noise) and the
            gradients are averaged (an effective batch of num_processes).
        on_checkpoint / checkpoint_every: called with the state every N steps (0: never).
    Returns:
        the DeTTrainState after `config.steps` steps in total.
    """
    config.validate()
    if x0.ndim != 5:
        raise ValueError(f"x0: expected a latent video [B, C, T, H, W], got {tuple(x0.shape)}")
    if tracks is None and config.track_weight > 0:
        raise ValueError(f"tracks: the tracking loss (track_weight {config.track_weight}) needs the source's tracks; "
                         f"pass tracks (moaw_core.det.tracks.source_tracks -> latent_tracks) or set track_weight=0")
    if tracks is not None and tracks.frames.numel() != x0.shape[2]:
        raise ValueError(f"tracks: made for {tracks.frames.numel()} latent frames, the source latent has "
                         f"{x0.shape[2]} ({tuple(x0.shape)})")
    state = state or DeTTrainState()
    params = [p for p in adapters.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = make_optimizer(adapters, config)
    if state.optimizer is not None:
        opt.load_state_dict(state.optimizer)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    adapters.train()
    for step in range(state.step, config.steps):
        u, sigma, noise = _draw(config, step, rank, x0, sigma_of)
        loss, rec = step_loss(denoise, x0, sigma, noise, config, tracks, u <= config.track_max_t)
        opt.zero_grad(set_to_none=True)
        (accelerator.backward(loss) if accelerator is not None else loss.backward())
        if world > 1:
            for p in params:
                if p.grad is not None:
                    p.grad = accelerator.reduce(p.grad, reduction="mean")
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        rec.update(step=step + 1, sigma=sigma, loss=float(loss.detach()))
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"DeT training: loss became {rec['loss']} at step {step + 1} (sigma {sigma:.3f}); "
                                     f"lower lr ({config.lr}) or check the source latent")
        state.losses.append(rec)
        state.step = step + 1
        if progress is not None:
            progress(step + 1, config.steps, rec)
        if on_checkpoint is not None and checkpoint_every and state.step % checkpoint_every == 0:
            state.optimizer = opt.state_dict()
            on_checkpoint(state)
    adapters.eval()
    for p in params:
        p.requires_grad_(False)   # trained: ready for sampling (a resumed run switches them on again)
    state.optimizer = opt.state_dict()
    return state


@torch.no_grad()
def evaluate_loss(denoise, x0: torch.Tensor, config: DeTTrainConfig, sigma_of=lambda u: u,
                  tracks: LatentTracks | None = None, draws: int = 8, seed: int = 12345) -> float:
    """Mean loss over `draws` fixed (sigma, noise) pairs (same pairs for every call with the same seed)."""
    probe = DeTTrainConfig(**{**asdict(config), "seed": seed})
    total = 0.0
    for i in range(draws):
        u, sigma, noise = _draw(probe, i, 0, x0, sigma_of)
        total += float(step_loss(denoise, x0, sigma, noise, config, tracks, u <= config.track_max_t)[0])
    return total / draws
