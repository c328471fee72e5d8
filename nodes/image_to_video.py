"""MoawImageToVideo: first-frame conditioning for the pack's image-to-video generator (and its codec VAE).

ComfyUI's `WanImageToVideo` assumes Wan's VAE (4x temporal compression); the Moaw codec keeps every frame, so
this node builds the same `concat_latent_image` / `concat_mask` conditioning for it
(`moaw_core.engine.i2v.comfy_inputs`), plus a LATENT whose noise mask holds the given frame fixed.
"""
from __future__ import annotations

import node_helpers
from comfy_api.latest import io

from moaw_core.engine.i2v import FILLS, comfy_inputs

from .types import CATEGORY


class MoawImageToVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawImageToVideo",
            display_name="Image To Video (Moaw codec)",
            category=CATEGORY,
            description="Conditions an image-to-video Wan model on a start image encoded with a VAE without "
                        "temporal compression (the bundled Moaw codec): sets concat_latent_image / concat_mask "
                        "on both conditionings and returns the latent to sample.",
            inputs=[
                io.Conditioning.Input("positive", tooltip="Conditioning for the cond pass (the tiny models: MoawEmptyConditioning)."),
                io.Conditioning.Input("negative", tooltip="Conditioning for the uncond pass; gets the same image condition."),
                io.Vae.Input("vae", tooltip="A VAE without temporal compression, e.g. Load Moaw Demo Codec."),
                io.Image.Input("start_image", tooltip="The first frame (resized to cover width x height, centre-cropped)."),
                io.Int.Input("width", default=64, min=16, max=4096, step=8, tooltip="Video width in pixels."),
                io.Int.Input("height", default=64, min=16, max=4096, step=8, tooltip="Video height in pixels."),
                io.Int.Input("length", default=8, min=2, max=1024, tooltip="Frames (the codec keeps every frame)."),
                io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="Videos per run."),
                io.Combo.Input("fill", options=list(FILLS), default="repeat",
                               tooltip="Condition frames after the first: the image repeated (how the bundled model "
                                       "was trained) or mid-gray (WanImageToVideo's way)."),
                io.Boolean.Input("keep_first_frame", default=True,
                                 tooltip="Hold frame 0 at the image's latent while sampling (a noise mask)."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip="Positive conditioning with the start frame."),
                     io.Conditioning.Output(display_name="negative", tooltip="Negative conditioning with the start frame."),
                     io.Latent.Output(display_name="latent", tooltip="Empty video latent whose noise mask holds frame 0.")],
        )

    @classmethod
    def execute(cls, positive, negative, vae, start_image, width, height, length, batch_size, fill,
                keep_first_frame) -> io.NodeOutput:
        d = comfy_inputs(vae.encode, start_image, width, height, length, fill, keep_first_frame, batch_size)
        values = {"concat_latent_image": d["concat_latent_image"], "concat_mask": d["concat_mask"]}
        latent = {"samples": d["samples"]}
        if "noise_mask" in d:
            latent["noise_mask"] = d["noise_mask"]
        return io.NodeOutput(node_helpers.conditioning_set_values(positive, values),
                             node_helpers.conditioning_set_values(negative, values), latent)


NODES = [MoawImageToVideo]
