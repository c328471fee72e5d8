"""diffusers `CogVideoXTransformer3DModel` (CogVideoX 2B/5B, 1.0 and 1.5).

Blocks: `transformer_blocks[i]` -> "block.{i}"; each returns `(hidden_states, encoder_hidden_states)` with
hidden = video tokens `[B, T'*H/p*W/p, C]`. Input latent is `[B, T, C, H, W]` (frames before channels).
CogVideoX 1.0 has no temporal patching (patch (1, 2, 2)); for 1.5 (`patch_size_t=2`) `detect_adapter` returns
a copy with patch (2, 2, 2).
"""
from dataclasses import replace

from .base import Adapter, Group

ADAPTER = Adapter(
    name="diffusers_cogvideox",
    input_proj="patch_embed.proj",
    family="cogvideox",
    host="diffusers",
    classes=("cogvideox_transformer_3d:CogVideoXTransformer3DModel",),
    groups=(Group("block", "transformer_blocks"),),
    patch=(1, 2, 2),
    input_layout="btchw",
    output_index=0,
    width_attr="heads*head_dim",
)


def specialise(model) -> Adapter:
    """The adapter with the model's own patch size (CogVideoX 1.5 patches time by 2)."""
    cfg = model.config
    return replace(ADAPTER, patch=(cfg.patch_size_t or 1, cfg.patch_size, cfg.patch_size))
