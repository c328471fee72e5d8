"""Block hooks shared by every host: `CaptureHook` records, `InjectHook` modifies, both via
`on_block(layer, hidden, ctx) -> hidden`, `reset()` and the flag `reset_after_run`: True when the hook holds
per-run state (device copies, an armed tap) that every host drops by calling `reset()` after each sampling run
(`reset_after_run_hooks`); False when its state is the result (CaptureHook's recordings). `attach(model, hooks)` binds them to a diffusers
module with forward hooks (removed in `finally`); `nodes/bridge.py` binds the same objects to ComfyUI.

`HookContext` is the only thing hooks read about the current call: the host glue fills it (step, sigma,
cond/uncond layout, latent grid) before the blocks run.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from moaw_core.engine.adapters import Adapter, detect
from moaw_core.engine.features import MotionFeatures, store_tensor
from moaw_core.engine.inject import InjectConfig, inject_grid, step_active

CAPTURE_HOOK = "moaw_capture"
INJECT_HOOK = "moaw_inject"
_ATTACHED = "_moaw_attached_hooks"


@dataclass
class HookContext:
    """Per-call facts for hooks.

    sigma: current noise level (None: unknown, then `timestep` is used to match cached steps).
    timestep: model timestep of the call (diffusers), optional.
    step: index of the current step in the schedule (capture key; window position).
    n_steps: number of steps in the schedule (len(sample_sigmas) - 1); None disables the step window.
    cond_or_uncond: ComfyUI's batch chunk layout (0 = cond, 1 = uncond, one entry per chunk); None = all cond.
    latent_grid: (T, H, W) of the model-input latent.
    """

    sigma: float | None = None
    timestep: float | None = None
    step: int | None = None
    n_steps: int | None = None
    cond_or_uncond: tuple[int, ...] | None = None
    latent_grid: tuple[int, int, int] | None = None

    def rows(self, batch: int, branch: str) -> torch.Tensor | None:
        """Batch rows of `branch` ("cond" | "both") in a batch of `batch`; None means all rows."""
        if branch == "both" or not self.cond_or_uncond or all(c == 0 for c in self.cond_or_uncond):
            return None
        k = len(self.cond_or_uncond)
        if batch % k:
            raise ValueError(f"batch {batch} does not split into {k} cond/uncond chunks")
        size = batch // k
        rows = [i * size + j for i, c in enumerate(self.cond_or_uncond) if c == 0 for j in range(size)]
        return torch.tensor(rows, dtype=torch.long)


class CaptureHook:
    """Records the token grids `[B, T, H, W, C]` of `layers` at `ctx.step` (cond rows by default).

    Args:
        adapter: the model's adapter. layers: canonical names to record. dtype: storage dtype (fp16 default;
        fp32 for exact replays). branch: "cond" or "both".
    """

    name = CAPTURE_HOOK
    reset_after_run = False  # the recordings are the result: kept after the run

    def __init__(self, adapter: Adapter, layers, dtype: torch.dtype = torch.float16, branch: str = "cond"):
        self.adapter, self.layers, self.dtype, self.branch = adapter, tuple(layers), dtype, branch
        if not self.layers:
            raise ValueError("CaptureHook: empty layer selection")
        self.reset()

    def reset(self):
        self.tensors: dict[tuple[str, int], torch.Tensor] = {}
        self.sigmas: dict[int, float] = {}
        self.timesteps: dict[int, float] = {}

    def on_block(self, layer: str, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        if layer not in self.layers or ctx.step is None:
            return hidden
        grid = self.adapter.to_grid(hidden, ctx.latent_grid)
        rows = ctx.rows(grid.shape[0], self.branch)
        if rows is not None:
            grid = grid[rows.to(grid.device)]
        self.tensors[(layer, ctx.step)] = store_tensor(grid, self.dtype)
        if ctx.sigma is not None:
            self.sigmas[ctx.step] = float(ctx.sigma)
        if ctx.timestep is not None:
            self.timesteps[ctx.step] = float(ctx.timestep)
        return hidden

    def to_features(self, fingerprint: dict, latent_shape, source: str = "", sigmas=None,
                    timesteps=None) -> MotionFeatures:
        """The captured tensors as MotionFeatures; `sigmas`/`timesteps` default to the recorded ones."""
        if not self.tensors:
            raise ValueError("CaptureHook captured nothing: no selected layer ran with a step set")
        n = max(s for _, s in self.tensors) + 1
        if sigmas is None:
            sigmas = [self.sigmas.get(i, float("nan")) for i in range(n)]
        if timesteps is None:
            timesteps = [self.timesteps.get(i, s) for i, s in enumerate(sigmas)]
        return MotionFeatures(dict(self.tensors), self.adapter.name, fingerprint, tuple(latent_shape),
                              tuple(sigmas), tuple(timesteps), source)


class InjectHook:
    """Combines cached features into the selected layers per `InjectConfig`.

    Run state (device copies of the current step's features) is dropped by `reset()`; the host calls it
    at the end of every sampling run.
    """

    name = INJECT_HOOK
    reset_after_run = True  # device copies of cached features: dropped after every run

    def __init__(self, features: MotionFeatures, config: InjectConfig, adapter: Adapter):
        layers = config.layers if config.layers is not None else features.layers
        for layer in layers:
            if layer not in features.layers:
                raise ValueError(f"InjectConfig.layers: unknown layer {layer!r}; the features hold "
                                 f"{list(features.layers)}")
        self.features, self.config, self.adapter, self.layers = features, config, adapter, tuple(layers)
        self.reset()

    def reset(self):
        self._cache: dict[tuple, torch.Tensor] = {}

    def active(self, ctx: HookContext) -> bool:
        cfg = self.config
        if cfg.mode == "add" and cfg.strength == 0:
            return False
        if ctx.n_steps is not None and ctx.step is not None:
            return step_active(ctx.step, ctx.n_steps, cfg.start, cfg.end)
        return cfg.start < cfg.end

    def _feature(self, layer: str, ctx: HookContext, device, dtype) -> torch.Tensor:
        if ctx.sigma is not None:
            step = self.features.nearest_step(ctx.sigma, layer)
        elif ctx.timestep is not None:
            step = self.features.nearest_step(ctx.timestep, layer, by="timestep")
        else:
            raise ValueError("InjectHook: the hook context has neither sigma nor timestep")
        key = (layer, step, device, dtype)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[1] == step}  # keep one step on device
            self._cache[key] = self.features.get(layer, step).to(device=device, dtype=dtype)
        return self._cache[key]

    def on_block(self, layer: str, hidden: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        if layer not in self.layers or not self.active(ctx):
            return hidden
        f = self._feature(layer, ctx, hidden.device, hidden.dtype)
        grid = self.adapter.to_grid(hidden, ctx.latent_grid)
        rows = ctx.rows(grid.shape[0], self.config.branch)
        if rows is None:
            return self.adapter.from_grid(inject_grid(grid, f, self.config, layer), hidden)
        if rows.numel() == 0:  # a pass of the other branch only (e.g. diffusers' separate uncond call)
            return hidden
        rows = rows.to(grid.device)
        out = grid.clone()
        out[rows] = inject_grid(grid[rows], f, self.config, layer)
        return self.adapter.from_grid(out, hidden)


def _input_of(args, kwargs):
    for key in ("hidden_states", "sample", "x"):
        if key in kwargs:
            return kwargs[key]
    return args[0] if args else None


@contextlib.contextmanager
def attach(model: torch.nn.Module, hooks, adapter: Adapter | None = None, ctx: HookContext | None = None):
    """Attach hooks to a diffusers model's layers for the duration of a `with` block.

    Args:
        model: diffusers transformer / UNet. hooks: objects with `name` and `on_block`. adapter: detected when
        None. ctx: shared HookContext (created when None); the caller sets step/sigma, and the root pre-hook
        fills `latent_grid` (and `timestep` when passed as a keyword) from each forward call.
    Yields the HookContext. Raises ValueError on a duplicate hook name (also against hooks already attached).
    """
    adapter = adapter or detect(model)
    ctx = ctx if ctx is not None else HookContext()
    hooks = list(hooks)
    names = [h.name for h in hooks]
    attached = getattr(model, _ATTACHED, set())
    dup = {n for n in names if names.count(n) > 1 or n in attached}
    if dup:
        raise ValueError(f"attach: hook name(s) {sorted(dup)} already attached to this model")
    num_frames = getattr(model.config, "num_frames", None) if hasattr(model, "config") else None

    def pre(module, args, kwargs):
        x = _input_of(args, kwargs)
        if x is not None:
            ctx.latent_grid = adapter.latent_grid(x, num_frames)
        t = kwargs.get("timestep")
        if t is not None:
            ctx.timestep = float(torch.as_tensor(t).flatten()[0])

    def make(layer_name):
        def post(module, args, output):
            hidden = adapter.get_hidden(output)
            new = hidden
            for h in hooks:
                new = h.on_block(layer_name, new, ctx)
            return output if new is hidden else adapter.set_hidden(output, hidden, new)
        return post

    handles = []
    setattr(model, _ATTACHED, attached | set(names))
    try:
        handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
        for layer in adapter.layers(model):
            module = model.get_submodule(layer.path)
            handles.append(module.register_forward_hook(make(layer.name)))
        yield ctx
    finally:
        for handle in handles:
            handle.remove()
        setattr(model, _ATTACHED, attached)
        reset_after_run_hooks(hooks)


def reset_after_run_hooks(hooks) -> None:
    """End of a sampling run: `reset()` every hook whose `reset_after_run` flag is set (any hook class: the
    flag, not the type, says whether it holds per-run state)."""
    for h in hooks:
        if getattr(h, "reset_after_run", False):
            h.reset()
