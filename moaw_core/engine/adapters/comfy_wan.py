"""ComfyUI native Wan 2.1 / 2.2 (T2V, I2V, FLF, VACE and camera variants share `WanModel`'s block loop).

Blocks: `diffusion_model.blocks[i]` -> "block.{i}", replaced through ComfyUI's
`set_model_patch_replace(fn, "dit", "double_block", i)`; the patch sees `img` = `[B, T*H/2*W/2, dim]`
(patch (1, 2, 2) over the `[B, C, T, H, W]` latent, tokens in (t, h, w) order).
A `reference_latent` (Wan 2.2 ref_conv) prepends tokens; that variant is not supported for injection.
"""
from .base import Adapter, Group

ADAPTER = Adapter(
    name="comfy_wan",
    input_proj="patch_embedding",
    family="wan",
    host="comfy",
    classes=("comfy.ldm.wan.model:WanModel",),
    groups=(Group("block", "blocks", "double_block"),),
    patch=(1, 2, 2),
    width_attr="dim",
)
