"""ComfyUI native LTX-Video (`comfy.ldm.lightricks.model.LTXVModel`).

Blocks: `transformer_blocks[i]` -> "block.{i}", patch key ("dit", "double_block", i). The patchifier has
patch size 1, so `img` = `[B, T*H*W, inner_dim]` over the `[B, 128, T, H, W]` latent, (t, h, w) order.
Keyframe guides (LTXVAddGuide) append frames to the latent; they are part of the grid.
"""
from .base import Adapter, Group

ADAPTER = Adapter(
    name="comfy_ltxv",
    input_proj="patchify_proj",
    family="ltxv",
    host="comfy",
    classes=("comfy.ldm.lightricks.model:LTXVModel",),
    groups=(Group("block", "transformer_blocks", "double_block"),),
    patch=(1, 1, 1),
    width_attr="inner_dim",
)
