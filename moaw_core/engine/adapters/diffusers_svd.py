"""diffusers `UNetSpatioTemporalConditionModel` (Stable Video Diffusion).

Layers: "down.{i}" = output of `down_blocks[i]` (after its downsampler; the same tensor is the last skip, and
is replaced there too), "mid.0" = `mid_block`, "up.{i}" = `up_blocks[i]`. Frames live in the batch
(`[(B*T), C, H, W]`, layout "frames"); the model input `sample` is `[B, T, C, H, W]`.
Names differ from `comfy_svd` (different block granularity), so SVD features are per host (family
"svd_diffusers").
"""
from dataclasses import dataclass

from .base import Adapter, Group, Layer


@dataclass(frozen=True)
class DiffusersSVDAdapter(Adapter):
    def layers(self, model):
        out = [Layer(f"down.{i}", f"down_blocks.{i}") for i in range(len(model.down_blocks))]
        out.append(Layer("mid.0", "mid_block"))
        return out + [Layer(f"up.{i}", f"up_blocks.{i}") for i in range(len(model.up_blocks))]

    def get_hidden(self, output):
        return output[0] if isinstance(output, tuple) else output

    def set_hidden(self, output, old, new):
        if not isinstance(output, tuple):
            return new
        hidden, skips = output
        if skips and skips[-1] is old:
            skips = skips[:-1] + (new,)
        return (new, skips)

    def width(self, model):
        return int(model.config.block_out_channels[0])


ADAPTER = DiffusersSVDAdapter(
    name="diffusers_svd",
    input_proj="conv_in",
    family="svd_diffusers",
    host="diffusers",
    classes=("unet_spatio_temporal_condition:UNetSpatioTemporalConditionModel",),
    groups=(Group("down", "down_blocks"), Group("mid", "mid_block"), Group("up", "up_blocks")),
    layout="frames",
    input_layout="btchw",
)
