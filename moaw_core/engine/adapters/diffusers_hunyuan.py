"""diffusers `HunyuanVideoTransformer3DModel`.

Blocks: `transformer_blocks[i]` -> "double.{i}", `single_transformer_blocks[i]` -> "single.{i}" (names as in
`comfy_hunyuan`). Both return `(hidden_states, encoder_hidden_states)`; hidden = video tokens only.
Input latent `[B, C, T, H, W]`, patch (patch_size_t, patch_size, patch_size) = (1, 2, 2) for released weights.
"""
from .base import Adapter, Group

ADAPTER = Adapter(
    name="diffusers_hunyuan",
    input_proj="x_embedder.proj",
    family="hunyuan_video",
    host="diffusers",
    classes=("transformer_hunyuan_video:HunyuanVideoTransformer3DModel",),
    groups=(Group("double", "transformer_blocks"), Group("single", "single_transformer_blocks")),
    patch=(1, 2, 2),
    output_index=0,
    width_attr="heads*head_dim",
)


def specialise(model) -> Adapter:
    """The adapter with the model's own patch size from its config."""
    from dataclasses import replace

    cfg = model.config
    return replace(ADAPTER, patch=(cfg.patch_size_t, cfg.patch_size, cfg.patch_size))
