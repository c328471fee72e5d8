"""ComfyUI native HunyuanVideo (`comfy.ldm.hunyuan_video.model.HunyuanVideo`).

Blocks: `double_blocks[i]` -> "double.{i}" (patch key ("dit", "double_block", i), `img` holds only video
tokens) and `single_blocks[i]` -> "single.{i}" (("dit", "single_block", i), `img` = video tokens followed by
text tokens; only the first T*H*W are touched). Patch (1, 2, 2) over `[B, C, T, H, W]`.
`ref_latent` (I2V v2 "concat" mode) prepends tokens and is not supported for injection.
"""
from .base import Adapter, Group

ADAPTER = Adapter(
    name="comfy_hunyuan",
    input_proj="img_in.proj",
    family="hunyuan_video",
    host="comfy",
    classes=("comfy.ldm.hunyuan_video.model:HunyuanVideo",),
    groups=(Group("double", "double_blocks", "double_block"), Group("single", "single_blocks", "single_block")),
    patch=(1, 2, 2),
    width_attr="hidden_size",
)
