"""Adapter registry: one line per family. `detect(model)` picks the adapter for a bare diffusion module
(ComfyUI's `model_patcher.model.diffusion_model`, or a diffusers transformer / UNet) by class name and module
path only, so this package never imports `comfy`.
"""
from __future__ import annotations

import importlib

from .base import Adapter, Group, Layer

_FAMILIES = (  # module names in this package; order matters only for overlapping class matches
    "comfy_wan", "comfy_hunyuan", "comfy_ltxv", "comfy_svd",
    "diffusers_wan", "diffusers_hunyuan", "diffusers_cogvideox", "diffusers_svd",
)


def all_adapters() -> list[Adapter]:
    return [importlib.import_module(f"{__name__}.{name}").ADAPTER for name in _FAMILIES]


def get_adapter(name: str, model=None) -> Adapter:
    """Adapter by name ("comfy_wan"); specialised to `model` (its patch size) when given."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown adapter {name!r}; known: {list(_FAMILIES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    if model is not None and hasattr(module, "specialise"):
        return module.specialise(model)
    return module.ADAPTER


def detect(model) -> Adapter:
    """The adapter for `model` (a bare diffusion torch module). Raises TypeError for unsupported models."""
    for name in _FAMILIES:
        if get_adapter(name).detect(model):
            return get_adapter(name, model)
    cls = type(model)
    raise TypeError(f"no Moaw adapter for model class {cls.__module__}.{cls.__name__}; supported families: "
                    f"{list(_FAMILIES)} (pass the bare diffusion module, e.g. model_patcher.model.diffusion_model)")


def check_compatible(features_fp: dict, model_fp: dict, what: str = "features") -> None:
    """Raise ValueError unless a feature fingerprint can be injected into a model with `model_fp`.

    Same family and width are required; block counts and the block-shape hash must agree when both were
    recorded on the same host (a tracker's wider input projection is not part of the fingerprint)."""
    if features_fp.get("family") != model_fp.get("family"):
        raise ValueError(f"{what} come from architecture {features_fp.get('family')!r} "
                         f"({features_fp.get('adapter')}), but the model is {model_fp.get('family')!r} "
                         f"({model_fp.get('adapter')})")
    if features_fp.get("width") != model_fp.get("width"):
        raise ValueError(f"{what} come from a model of width {features_fp.get('width')}, the model has width "
                         f"{model_fp.get('width')} (a different model size of the same family)")
    if features_fp.get("host") == model_fp.get("host"):
        if features_fp.get("layers") != model_fp.get("layers") or \
                features_fp.get("blocks_sha1") != model_fp.get("blocks_sha1"):
            raise ValueError(f"{what} come from a model whose blocks differ ({features_fp.get('layers')}, "
                             f"{features_fp.get('blocks_sha1')}) from this model's ({model_fp.get('layers')}, "
                             f"{model_fp.get('blocks_sha1')})")


__all__ = ["Adapter", "Group", "Layer", "all_adapters", "check_compatible", "detect", "get_adapter"]
