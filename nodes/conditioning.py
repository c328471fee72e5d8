"""Zero (null-text) conditioning, for models trained without text such as the bundled tiny demo models."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from .types import CATEGORY


class MoawEmptyConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawEmptyConditioning",
            display_name="Empty Conditioning (Moaw)",
            category=CATEGORY,
            description="All-zero text conditioning. The bundled tiny demo models were trained on it; with "
                        "real models it gives an unconditional pass without loading a text encoder.",
            inputs=[
                io.Int.Input("width", default=4096, min=1, max=16384,
                             tooltip="Text-embedding width the model expects (Wan: 4096, HunyuanVideo: 4096)."),
                io.Int.Input("length", default=1, min=1, max=1024, tooltip="Number of (zero) text tokens."),
            ],
            outputs=[io.Conditioning.Output(tooltip="All-zero text conditioning of the given width and length.")],
        )

    @classmethod
    def execute(cls, width: int, length: int) -> io.NodeOutput:
        return io.NodeOutput([[torch.zeros(1, length, width), {}]])


NODES = [MoawEmptyConditioning]
