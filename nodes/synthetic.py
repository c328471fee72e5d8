"""A synthetic source video (textured layers under known motion): a test pattern that needs no file."""
from __future__ import annotations

from comfy_api.latest import io

from moaw_core.data.sources import CAMERA_CHOICES, OBJECT_CHOICES, synthetic_source

from .types import CATEGORY


class MoawSyntheticVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawSyntheticVideo",
            display_name="Synthetic Source Video (Moaw)",
            category=CATEGORY,
            description="Renders textured layers under a chosen camera and object motion, as IMAGE frames. "
                        "A source clip with known motion for trying the pack without any video file.",
            inputs=[
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Scene seed (textures and shapes)."),
                io.Int.Input("frames", default=8, min=2, max=257, tooltip="Number of frames."),
                io.Int.Input("width", default=64, min=16, max=2048, step=8, tooltip="Frame width in pixels."),
                io.Int.Input("height", default=64, min=16, max=2048, step=8, tooltip="Frame height in pixels."),
                io.Combo.Input("camera", options=list(CAMERA_CHOICES), default="static",
                               tooltip="Camera motion (pans/tilts move the whole scene, zooms scale it)."),
                io.Combo.Input("objects", options=list(OBJECT_CHOICES), default="right",
                               tooltip="Direction in which the foreground object moves ('none': background only)."),
                io.Float.Input("speed", default=2.0, min=0.0, max=64.0, step=0.25,
                               tooltip="Motion speed in pixels per frame."),
            ],
            outputs=[io.Image.Output(display_name="frames", tooltip="The clip's frames, [T, H, W, 3] in [0, 1].")],
        )

    @classmethod
    def execute(cls, seed, frames, width, height, camera, objects, speed) -> io.NodeOutput:
        clip = synthetic_source(seed, frames=frames, height=height, width=width, camera=camera, objects=objects,
                                speed=speed)
        return io.NodeOutput(clip.video)


NODES = [MoawSyntheticVideo]
