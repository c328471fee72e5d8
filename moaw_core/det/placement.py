"""Where a DeT adapter sits in each host, as data, and the two ways of binding it.

Per (host, family) the self-attention module of each block, relative to the block (`ATTENTION`). In every host
listed, that module's first input is the normed, modulated video tokens that enter self-attention
(`[B, T*H*W, C]`), and its output (a tensor, or a tuple whose first item is the video tokens) is what the block
adds back to the residual after the gate. DeT adds `adapter(input)` to that output:

    diffusers Wan          blocks[i].attn1                      output tensor
    diffusers CogVideoX    transformer_blocks[i].attn1          output (video, text); video changed
    diffusers HunyuanVideo transformer_blocks[i].attn,          output (video, text); video changed
                           single_transformer_blocks[i].attn    (diffusers splits the text off before attn)
    ComfyUI Wan            blocks[i].self_attn                  output tensor (object patch, see below)

ComfyUI's HunyuanVideo computes attention inline (flux layers, no attention module), so it has no placement yet.

- diffusers: `attach_det(model, adapters)` registers forward hooks (a root pre-hook records the latent grid);
  they are removed in `finally`.
- ComfyUI: `DeTAttention` replaces a block's attention module through `ModelPatcher.add_object_patch` on a clone
  (`nodes/det_bridge.py`). It re-registers the original's children under the same names, so parameter paths
  (and LoRA / weight patches keyed on them) are unchanged, and holds the adapters outside the module tree.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from moaw_core.det.adapter import DeTAdapters
from moaw_core.engine.adapters import Adapter, detect

# (host, family) -> {layer prefix: attention module path relative to the block}
ATTENTION = {
    ("diffusers", "wan"): {"block": "attn1"},
    ("diffusers", "cogvideox"): {"block": "attn1"},
    ("diffusers", "hunyuan_video"): {"double": "attn", "single": "attn"},
    ("comfy", "wan"): {"block": "self_attn"},
}


def attention_paths(adapter: Adapter, model: nn.Module, layers) -> dict[str, str]:
    """{canonical layer name: attention module path inside `model`} for `layers`."""
    table = ATTENTION.get((adapter.host, adapter.family))
    if table is None:
        supported = sorted(f"{h} {f}" for h, f in ATTENTION)
        raise TypeError(f"DeT: no adapter placement for {adapter.host} {adapter.family!r} models; supported: "
                        f"{supported}")
    known = {layer.name: layer.path for layer in adapter.layers(model)}
    unknown = [n for n in layers if n not in known]
    if unknown:
        raise ValueError(f"DeT layers: {unknown} are not blocks of this {adapter.name} model "
                         f"({len(known)} blocks: {list(known)[:3]}...)")
    return {n: f"{known[n]}.{table[n.split('.')[0]]}" for n in layers}


def check_adapters(adapters: DeTAdapters, adapter: Adapter, model: nn.Module) -> None:
    """ValueError unless `adapters` fit `model` (same family and hidden width)."""
    if not isinstance(adapters, DeTAdapters):
        raise TypeError(f"adapters: expected DeTAdapters, got {type(adapters).__name__}")
    width = adapter.width(model)
    if adapters.family != adapter.family:
        raise ValueError(f"DeT adapters were trained for a {adapters.family!r} model, this model is "
                         f"{adapter.family!r} ({adapter.name})")
    if adapters.width != width:
        raise ValueError(f"DeT adapters have width {adapters.width}, this {adapter.family} model has width {width} "
                         f"(another model size)")


def _input(args, kwargs) -> torch.Tensor:
    return kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


@contextlib.contextmanager
def attach_det(model: nn.Module, adapters: DeTAdapters, layers=None, scale: float = 1.0):
    """Run a diffusers transformer with DeT adapters inside a `with` block (forward hooks, removed after).

    Args:
        model: diffusers WanTransformer3DModel / CogVideoXTransformer3DModel / HunyuanVideoTransformer3DModel.
        adapters: DeTAdapters for this family and width. layers: which of the adapters' blocks to use
            (default all). scale: multiplies every adapter's output (1 = as trained).
    """
    adapter = detect(model)
    check_adapters(adapters, adapter, model)
    layers = list(adapters.layer_names if layers is None else layers)
    for name in layers:
        adapters.module(name)
    paths = attention_paths(adapter, model, layers)
    num_frames = getattr(getattr(model, "config", None), "num_frames", None)
    state = {"grid": None}

    def pre(module, args, kwargs):
        x = kwargs.get("hidden_states", args[0] if args else None)
        state["grid"] = adapter.token_grid(adapter.latent_grid(x, num_frames))

    def make(layer):
        def post(module, args, kwargs, output):
            if scale == 0:
                return output
            x = _input(args, kwargs)
            d = adapters.delta(layer, x, state["grid"])
            d = d if scale == 1 else d * scale
            if isinstance(output, tuple):
                return (output[0] + d.to(output[0].dtype),) + tuple(output[1:])
            return output + d.to(output.dtype)
        return post

    handles = []
    try:
        handles.append(model.register_forward_pre_hook(pre, with_kwargs=True))
        for layer, path in paths.items():
            handles.append(model.get_submodule(path).register_forward_hook(make(layer), with_kwargs=True))
        yield model
    finally:
        for h in handles:
            h.remove()


class DeTAttention(nn.Module):
    """An attention module plus a DeT adapter, for hosts that swap modules (ComfyUI object patches).

    Args:
        inner: the original attention module (its children are re-registered here under the same names).
        layer: canonical block name. binding: object with `adapters_for(device) -> DeTAdapters`,
            `token_grid` ((T, H, W) of the current call) and `scale`.
    """

    def __init__(self, inner: nn.Module, layer: str, binding):
        super().__init__()
        for name, child in inner.named_children():
            self.add_module(name, child)
        for name, p in inner.named_parameters(recurse=False):
            self.register_parameter(name, p)
        object.__setattr__(self, "_inner", inner)      # not a child: parameter paths stay the original's
        object.__setattr__(self, "_binding", binding)
        self.layer = layer

    def __deepcopy__(self, memo):
        return self

    def forward(self, x, *args, **kwargs):
        out = self._inner(x, *args, **kwargs)
        b = self._binding
        if b.token_grid is None or b.scale == 0:
            return out
        d = b.adapters_for(x.device).delta(self.layer, x, b.token_grid)
        return out + (d if b.scale == 1 else d * b.scale).to(out.dtype)
