"""ComfyUI native Stable Video Diffusion (`openaimodel.UNetModel` holding `VideoResBlock`s).

Frames live in the batch: every block sees `[(B*T), C, H, W]` (layout "frames"); T comes from the
`num_video_frames` kwarg of the diffusion model (the bridge records it with a DIFFUSION_MODEL wrapper).

Layers (names follow ComfyUI's own `transformer_options["block"]`):
    "input.{i}"   output of `input_blocks[i]` (also what goes into the skip connection)
                  -> ComfyUI `input_block_patch` while block == ("input", i)
    "middle.0"    output of `middle_block`     -> `output_block_patch` while block == ("output", 0), on `h`
    "output.{i}"  output of `output_blocks[i]` -> `output_block_patch` while block == ("output", i + 1), on `h`
The last output block feeds `out` directly and has no patch point, so it is not injectable.
Patch keys here are ("input_block_patch", i) / ("output_block_patch", j) = (patch list, block id seen).
SVD's diffusers `down_blocks[2..3]` (the paper's best layers) are ComfyUI `input.6`..`input.11`.
"""
from dataclasses import dataclass

from .base import Adapter, Group, Layer


@dataclass(frozen=True)
class SVDAdapter(Adapter):
    def layers(self, model):
        n_in, n_out = len(model.input_blocks), len(model.output_blocks)
        out = [Layer(f"input.{i}", f"input_blocks.{i}", ("input_block_patch", i)) for i in range(n_in)]
        out.append(Layer("middle.0", "middle_block", ("output_block_patch", 0)))
        out += [Layer(f"output.{i}", f"output_blocks.{i}", ("output_block_patch", i + 1)) for i in range(n_out - 1)]
        return out


ADAPTER = SVDAdapter(
    name="comfy_svd",
    input_proj="input_blocks.0.0",
    family="svd_comfy",
    host="comfy",
    classes=("comfy.ldm.modules.diffusionmodules.openaimodel:UNetModel",),
    groups=(Group("input", "input_blocks"), Group("middle", "middle_block"), Group("output", "output_blocks")),
    layout="frames",
    input_layout="frames",
    width_attr="model_channels",
    needs=("VideoResBlock",),
)
