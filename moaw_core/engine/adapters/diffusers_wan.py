"""diffusers `WanTransformer3DModel` (Wan 2.1 / 2.2, T2V and I2V).

Blocks: `blocks[i]` -> "block.{i}" (same names and token layout as `comfy_wan`, family "wan", so features
move between hosts). Each block returns the hidden states `[B, T*H/2*W/2, dim]`; input latent `[B, C, T, H, W]`.
"""
from .base import Adapter, Group

ADAPTER = Adapter(
    name="diffusers_wan",
    input_proj="patch_embedding",
    family="wan",
    host="diffusers",
    classes=("transformer_wan:WanTransformer3DModel",),
    groups=(Group("block", "blocks"),),
    patch=(1, 2, 2),
    width_attr="heads*head_dim",
)


def specialise(model) -> Adapter:
    """The adapter with the model's own patch size from its config."""
    from dataclasses import replace

    return replace(ADAPTER, patch=tuple(int(p) for p in model.config.patch_size))
