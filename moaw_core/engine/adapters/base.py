"""Adapter base: what a model family must tell the capture / injection code, as data.

An `Adapter` is a frozen dataclass. A family file creates one instance (class names to detect, which module
lists hold the injectable blocks, canonical names, patch size, token layout, ComfyUI patch key) and only
overrides a method where its layout really differs. Canonical layer names:

    DiT families     "block.{i}"                      (Wan, LTXV, CogVideoX)
    HunyuanVideo     "double.{i}", "single.{i}"
    SVD (ComfyUI)    "input.{i}", "middle.0", "output.{i}"   (openaimodel input_blocks / middle / output_blocks)
    SVD (diffusers)  "down.{i}", "mid.0", "up.{i}"            (down_blocks / mid_block / up_blocks)

Token layouts (`layout`):
    "tokens"  hidden `[B, N, C]`; the first T*H*W tokens are the video grid in (t, h, w) order, patch
              `patch` = (pt, ph, pw) over the model-input latent; trailing tokens (text in single-stream
              blocks) are passed through untouched.
    "frames"  hidden `[(B*T), C, H, W]` (U-Net with frames in the batch); H, W read from the hidden itself.

`to_grid(hidden, latent_grid) -> [B, T, H, W, C]` and `from_grid(grid, like) -> hidden` convert both ways;
`latent_grid` is the (T, H, W) of the model-input latent.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layer:
    """One injectable layer.

    name: canonical name ("block.3"); path: module path inside the model ("blocks.3");
    patch: ComfyUI patch key, e.g. ("dit", "double_block", 3) or ("input_block_patch", 4); None for diffusers.
    """

    name: str
    path: str
    patch: tuple | None = None


@dataclass(frozen=True)
class Group:
    """A list of blocks: `prefix` of canonical names, `attr` the ModuleList path, `patch` the ComfyUI
    block name for ("dit", patch, i) keys (None: no ComfyUI block replace)."""

    prefix: str
    attr: str
    patch: str | None = None


@dataclass(frozen=True)
class Adapter:
    """Per-family facts. See the module docstring for the field semantics."""

    name: str                       # "comfy_wan"
    family: str                     # "wan": features are interchangeable within a family (same layout)
    host: str                       # "comfy" | "diffusers"
    classes: tuple[str, ...]        # "module.suffix:ClassName" matched against the model's MRO
    groups: tuple[Group, ...]
    patch: tuple[int, int, int] = (1, 2, 2)
    layout: str = "tokens"          # "tokens" | "frames"
    input_layout: str = "bcthw"     # model-input latent layout: "bcthw" | "btchw" | "frames" ([(B*T), C, H, W])
    output_index: int | None = None  # diffusers block output: the tensor itself (None) or tuple index
    width_attr: str = "dim"         # attribute / config key holding the hidden width
    needs: tuple[str, ...] = ()     # extra module class names that must be present (SVD vs image U-Net)
    input_proj: str = ""            # path of the input projection (its weight's dim 1 = input channels)

    # ---- detection and description -----------------------------------------------------------------------
    def detect(self, model: torch.nn.Module) -> bool:
        """True when `model` (the bare diffusion module) belongs to this family."""
        hit = any(f"{c.__module__}:{c.__name__}".endswith(spec) for c in type(model).__mro__ for spec in self.classes)
        if hit and self.needs:
            names = {type(m).__name__ for m in model.modules()}
            hit = all(n in names for n in self.needs)
        return hit

    def layers(self, model: torch.nn.Module) -> list[Layer]:
        """All injectable layers of `model`, in forward order."""
        out = []
        for g in self.groups:
            blocks = _get(model, g.attr)
            for i in range(len(blocks)):
                patch = ("dit", g.patch, i) if g.patch else None
                out.append(Layer(f"{g.prefix}.{i}", f"{g.attr}.{i}", patch))
        return out

    def width(self, model: torch.nn.Module) -> int:
        cfg = getattr(model, "config", None)
        if self.width_attr == "heads*head_dim" and cfg is not None:
            return int(cfg.num_attention_heads * cfg.attention_head_dim)
        if cfg is not None and hasattr(cfg, self.width_attr) and not hasattr(model, self.width_attr):
            return int(getattr(cfg, self.width_attr))
        return int(_get(model, self.width_attr))

    def in_channels(self, model: torch.nn.Module) -> int:
        """Channels the model's input projection takes (a tracker's are source + track channels)."""
        if not self.input_proj:
            raise ValueError(f"{self.name}: input channels unknown (no input_proj recorded)")
        return int(_get(model, self.input_proj).weight.shape[1])

    def fingerprint(self, model: torch.nn.Module) -> dict:
        """Structure of the injectable blocks: family, layer counts, width, and a hash of the blocks'
        parameter names and shapes. Input/output projections are excluded, so a tracker with a wider input
        projection but identical blocks has the same fingerprint as its generator."""
        h = hashlib.sha1()
        counts = {}
        for g in self.groups:
            blocks = _get(model, g.attr)
            counts[g.prefix] = len(blocks) if isinstance(blocks, torch.nn.ModuleList) else 1
            for name, p in blocks.named_parameters():
                h.update(f"{g.prefix}.{name}:{tuple(p.shape)};".encode())
        return {"family": self.family, "adapter": self.name, "host": self.host, "layers": counts,
                "width": self.width(model), "blocks_sha1": h.hexdigest()[:16]}

    # ---- token layout -------------------------------------------------------------------------------------
    def latent_grid(self, x: torch.Tensor, num_frames: int | None = None) -> tuple[int, int, int]:
        """(T, H, W) of a model-input latent `x` in this adapter's `input_layout`."""
        if self.input_layout == "bcthw":
            return tuple(x.shape[2:5])
        if self.input_layout == "btchw":
            return (x.shape[1], x.shape[3], x.shape[4])
        if num_frames is None:
            raise ValueError(f"{self.name}: num_frames is needed for a frames-in-batch input {tuple(x.shape)}")
        return (int(num_frames), x.shape[-2], x.shape[-1])

    def token_grid(self, latent_grid, hidden: torch.Tensor | None = None) -> tuple[int, int, int]:
        """Token grid (T, H, W) of a layer's hidden state for a model input of `latent_grid`."""
        t, h, w = latent_grid
        if self.layout == "frames":
            return (t, hidden.shape[-2], hidden.shape[-1])
        pt, ph, pw = self.patch
        return (math.ceil(t / pt), math.ceil(h / ph), math.ceil(w / pw))

    def to_grid(self, hidden: torch.Tensor, latent_grid) -> torch.Tensor:
        """Layer hidden state -> `[B, T, H, W, C]` (a view where possible)."""
        t, h, w = self.token_grid(latent_grid, hidden)
        if self.layout == "frames":
            if hidden.ndim != 4 or hidden.shape[0] % t:
                raise ValueError(f"{self.name}: hidden {tuple(hidden.shape)} is not [(B*{t}), C, H, W]")
            return hidden.unflatten(0, (-1, t)).permute(0, 1, 3, 4, 2)
        n = t * h * w
        if hidden.ndim != 3 or hidden.shape[1] < n:
            raise ValueError(f"{self.name}: hidden {tuple(hidden.shape)} has fewer than T*H*W = {t}*{h}*{w} "
                             f"tokens for latent grid {tuple(latent_grid)}")
        return hidden[:, :n].unflatten(1, (t, h, w))

    def from_grid(self, grid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Inverse of `to_grid`: `[B, T, H, W, C]` -> a tensor shaped like `like` (extra tokens kept)."""
        grid = grid.to(like.dtype)
        if self.layout == "frames":
            return grid.permute(0, 1, 4, 2, 3).flatten(0, 1).contiguous()
        flat = grid.flatten(1, 3)
        if flat.shape[1] == like.shape[1]:
            return flat
        return torch.cat([flat, like[:, flat.shape[1]:]], dim=1)

    # ---- diffusers block outputs --------------------------------------------------------------------------
    def get_hidden(self, output):
        """The video hidden state inside a diffusers block's forward output."""
        return output if self.output_index is None else output[self.output_index]

    def set_hidden(self, output, old: torch.Tensor, new: torch.Tensor):
        """`output` with its hidden state replaced by `new` (skip copies of the same tensor replaced too)."""
        if self.output_index is None:
            return new
        items = list(output)
        items[self.output_index] = new
        for k, item in enumerate(items):  # U-Net down blocks also return the hidden as the last skip tensor
            if k != self.output_index and isinstance(item, tuple) and item and item[-1] is old:
                items[k] = item[:-1] + (new,)
        return type(output)(items) if not isinstance(output, tuple) else tuple(items)


def _get(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj
