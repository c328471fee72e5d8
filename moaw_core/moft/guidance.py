"""MOFT latent guidance, host-agnostic: the config, the early-stopping feature tap, and one guided update.

At each step of the window, before the sampler's normal step, `repeats` times: a forward with gradients on the
latents runs only up to the feature block (`FeatureTap` raises `FeatureStop` right after it, so later blocks and
the output head never run), the generated MOFT series is compared with the reference, and
`x <- x - step_size * grad` with the gradient zeroed outside the region mask (no optimiser, as the official code).
Hosts bind `FeatureTap` like any other hook (`engine.hooks.attach` for diffusers, `nodes/bridge.py` for ComfyUI)
and pass a `feature_fn(x) -> grid` to `guide_latents`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from moaw_core.engine.adapters import Adapter, check_compatible
from moaw_core.engine.inject import step_active
from moaw_core.moft.features import LOSSES, MoftReference, moft_loss, moft_series, region_mask

TAP_HOOK = "moaw_moft_tap"


@dataclass(frozen=True)
class MoftGuidanceConfig:
    """How to guide.

    start, end: step window as fractions of the schedule; step i is guided when start <= i / n < end. The
        defaults are the official steps 3-11 of 25.
    repeats: gradient updates per guided step (official: 2). loss: "mse" (official) or "cosine" (DiT port).
    weight: loss weight (official 6-10; 0 = plain sampling, no extra pass runs). step_size: latents -= step_size
        * grad (official 0.5).
    mask: region of the generation `[H, W]` or `[T, H, W]` (latent or pixel resolution): the generated MOFT is
        averaged inside it and the gradient is zero outside it. None = the whole frame.
    """

    start: float = 0.12
    end: float = 0.48
    repeats: int = 2
    loss: str = "mse"
    weight: float = 8.0
    step_size: float = 0.5
    mask: torch.Tensor | None = field(default=None, compare=False, hash=False)

    def __post_init__(self):
        if not (0.0 <= self.start <= 1.0 and 0.0 <= self.end <= 1.0):
            raise ValueError(f"start/end: expected fractions in [0, 1], got {self.start}, {self.end}")
        if self.start >= self.end:
            raise ValueError(f"start/end: empty guidance window [{self.start}, {self.end})")
        if int(self.repeats) < 1:
            raise ValueError(f"repeats: expected >= 1, got {self.repeats}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss: expected one of {LOSSES}, got {self.loss!r}")
        if not (self.weight == self.weight and self.step_size == self.step_size) or self.step_size < 0:
            raise ValueError(f"weight/step_size: expected finite numbers, step_size >= 0, got {self.weight}, "
                             f"{self.step_size}")

    def guided_steps(self, n_steps: int) -> list[int]:
        """The step indices of a schedule of `n_steps` steps inside the window; raises ValueError when none."""
        steps = [i for i in range(int(n_steps)) if step_active(i, n_steps, self.start, self.end)]
        if not steps:
            raise ValueError(f"start/end: the window [{self.start}, {self.end}) contains none of the {n_steps} "
                             f"sampling steps (widen it or sample more steps)")
        return steps


class FeatureStop(Exception):
    """Raised by an armed FeatureTap right after the feature block: ends the forward early (private)."""


class FeatureTap:
    """A block hook (`on_block(layer, hidden, ctx)`): when armed, records the cond rows of `layer` as a token
    grid `[B, T, H, W, C]` (keeping the autograd graph) and raises FeatureStop. Unarmed it does nothing."""

    name = TAP_HOOK
    reset_after_run = True  # disarmed and emptied after every sampling run

    def __init__(self, adapter: Adapter, layer: str):
        self.adapter, self.layer = adapter, layer
        self.armed, self.grid = False, None

    def reset(self):
        self.armed, self.grid = False, None

    def on_block(self, layer: str, hidden: torch.Tensor, ctx) -> torch.Tensor:
        if not self.armed or layer != self.layer:
            return hidden
        grid = self.adapter.to_grid(hidden, ctx.latent_grid)
        rows = ctx.rows(grid.shape[0], "cond")
        self.grid = grid if rows is None else grid[rows.to(grid.device)]
        raise FeatureStop

    @contextlib.contextmanager
    def arm(self):
        self.armed, self.grid = True, None
        try:
            yield self
        finally:
            self.armed = False

    def features(self, run) -> torch.Tensor:
        """Call `run()` (one model forward) with the tap armed; return the tapped grid."""
        with self.arm():
            try:
                run()
            except FeatureStop:
                pass
        if self.grid is None:
            raise RuntimeError(f"MOFT: block {self.layer!r} did not run during the guidance forward")
        grid, self.grid = self.grid, None
        return grid


@contextlib.contextmanager
def checkpointed(modules):
    """Within the block, each module's forward is activation-checkpointed (`torch.utils.checkpoint`,
    non-reentrant): the gradient pass keeps only the blocks' inputs and recomputes one block at a time in the
    backward, so its memory is about one block's activations instead of every block's up to the feature block.
    Instance attributes, removed in `finally`."""
    from torch.utils.checkpoint import checkpoint

    touched = []
    try:
        for m in modules:
            orig = m.forward

            def run(*args, _orig=orig, **kwargs):
                if not torch.is_grad_enabled():
                    return _orig(*args, **kwargs)
                return checkpoint(_orig, *args, use_reentrant=False, **kwargs)

            touched.append((m, "forward" in m.__dict__, orig))
            m.forward = run
        yield
    finally:
        for m, had, orig in reversed(touched):
            if had:
                m.forward = orig
            else:
                del m.forward


def check_reference(reference: MoftReference, adapter: Adapter, model_fingerprint: dict, layers) -> None:
    """Raise a clear error unless `reference` was built by a model like this one (family, width, blocks)."""
    if not isinstance(reference, MoftReference):
        raise TypeError(f"reference: expected MoftReference, got {type(reference).__name__}")
    check_compatible(reference.fingerprint, model_fingerprint, what="the MOFT reference")
    if reference.layer not in layers:
        raise ValueError(f"reference.layer {reference.layer!r} is not a block of this {adapter.name} model")


def check_token_grid(reference: MoftReference, grid) -> None:
    if int(grid[0]) != reference.token_grid[0]:
        raise ValueError(f"the MOFT reference has {reference.token_grid[0]} latent frames, the generation has "
                         f"{int(grid[0])}: generate as many frames as the source video")


def latent_mask(config: MoftGuidanceConfig, latent_shape) -> torch.Tensor | None:
    """The region mask on the latent grid `[1, 1, T, H, W]` (for the gradient), or None."""
    m = region_mask(config.mask, latent_shape[-3:], "mask")
    return None if m is None else m[None, None]


def guide_latents(x: torch.Tensor, feature_fn, reference: MoftReference, config: MoftGuidanceConfig,
                  adapter: Adapter, grad_mask: torch.Tensor | None = None,
                  blocks=()) -> tuple[torch.Tensor, list[float]]:
    """`config.repeats` MOFT updates of latents `x` `[B, C, T, H, W]` (model layout, flow/DiT families).

    Args:
        feature_fn: `x -> [B, T, H, W, C]` token grid of the feature block (cond rows), differentiable in x.
        grad_mask: `[1, 1, T, H, W]` (from `latent_mask`) or None.
        blocks: modules to activation-checkpoint during the gradient pass (`checkpointed`), e.g. the model's
            blocks; () keeps every activation.
    Returns:
        (updated latents, like x; the weighted loss before each update)."""
    losses = []
    tok_mask = None
    for _ in range(int(config.repeats)):
        with torch.inference_mode(False), torch.enable_grad(), checkpointed(blocks):
            xr = x.detach().clone().requires_grad_(True)
            grid = feature_fn(xr)
            check_token_grid(reference, grid.shape[1:4])
            if config.mask is not None and tok_mask is None:
                tok_mask = region_mask(config.mask, grid.shape[1:4], "mask")
            gen = moft_series(grid, reference.channels, tok_mask, reference.pooling)
            ref = reference.values.clone()  # a normal tensor even if the reference was built in inference mode
            loss = config.weight * moft_loss(gen, ref, config.loss)
            (grad,) = torch.autograd.grad(loss, xr)
        if grad_mask is not None:
            grad = grad * grad_mask.to(grad.device, grad.dtype)
        x = (x - config.step_size * grad.to(x.dtype)).detach()
        losses.append(float(loss.detach()))
    return x, losses

