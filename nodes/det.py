"""DeT nodes: train temporal adapters on one source video, save / load them (models/moaw_det), apply them to a
MODEL clone. The math lives in `moaw_core.det`; the ComfyUI glue in `nodes/det_bridge.py`."""
from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from moaw_core.det.files import load_adapters
from moaw_core.det.train import DeTTrainConfig

from . import det_bridge, paths
from .types import CATEGORY, DeTType

_TRACKERS = ["lk", "dis", "cotracker", "none"]


class MoawTrainDeT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawTrainDeT", display_name="Train DeT Adapters", category=CATEGORY,
            description="DeT: trains a temporal Conv1d adapter per block on one source video (base frozen): "
                        "diffusion loss plus the dense tracking loss. Paper defaults: 500 steps, lr 1e-5.",
            inputs=[
                io.Model.Input("model", tooltip="The generator (not modified; a patched clone is returned)."),
                io.Latent.Input("latent", tooltip="The source video, VAE-encoded (batch 1)."),
                io.Conditioning.Input("positive", tooltip="Conditioning of the source: a prompt describing it, or "
                                                          "image-to-video conditioning (first frame)."),
                io.Int.Input("steps", default=500, min=1, max=100000, tooltip="Training steps in total (a resumed "
                                                                            "run continues up to this)."),
                io.Float.Input("learning_rate", default=1e-5, min=1e-7, max=1.0, step=1e-6,
                               tooltip="AdamW learning rate (betas 0.9/0.95, weight decay 1e-4, grad clip 1)."),
                io.Float.Input("track_weight", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Weight of the dense tracking loss (only at timesteps t <= 400/1000)."),
                io.Combo.Input("tracker", options=_TRACKERS, default="lk",
                               tooltip="Point tracker for the source: OpenCV Lucas-Kanade / DIS, CoTracker3 (if in "
                                       "your torch.hub cache), or none (diffusion loss only)."),
                io.Int.Input("points", default=100, min=1, max=4096, tooltip="Tracked points (paper: 100)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Seed of the noise and timestep draws."),
                io.Float.Input("fraction", default=0.35, min=0.01, max=1.0, step=0.01,
                               tooltip="Share of blocks (first ones) that get the adapters in the returned MODEL."),
                io.Image.Input("source_video", optional=True,
                               tooltip="The source frames that were encoded (needed for the tracking loss)."),
                io.Mask.Input("mask", optional=True, tooltip="First-frame foreground mask: points are drawn in it."),
                DeTType.Input("resume", optional=True, tooltip="Adapters to continue training (from Load DeT)."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="A clone of the model with the trained adapters."),
                     DeTType.Output(display_name="det", tooltip="The trained DeT adapters."),
                     io.Image.Output(display_name="loss_graph", tooltip="Training loss over the steps.")],
        )

    @classmethod
    def execute(cls, model, latent, positive, steps, learning_rate, track_weight, tracker, points, seed, fraction,
                source_video=None, mask=None, resume=None) -> io.NodeOutput:
        config = DeTTrainConfig(steps=steps, lr=learning_rate, track_weight=track_weight, seed=seed)
        m, trained, graph = det_bridge.train_det_node(model, latent, positive, config, source_video, tracker,
                                                      points, mask, resume, fraction)
        return io.NodeOutput(m, trained, graph)


class MoawSaveDeT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawSaveDeT", display_name="Save DeT Adapters", category=CATEGORY,
            description="Writes the adapters to models/moaw_det/<name>.safetensors (settings, base fingerprint, "
                        "losses in the metadata).",
            inputs=[DeTType.Input("det", tooltip="Trained adapters."),
                    io.String.Input("name", default="det_adapters", tooltip="File name (no folders)."),
                    io.Boolean.Input("resumable", default=True,
                                     tooltip="Also store the optimiser state, so training can continue.")],
            outputs=[DeTType.Output(display_name="det", tooltip="DeT adapters.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, det, name, resumable) -> io.NodeOutput:
        path = det.save(paths.det_path(name), resumable=resumable)
        return io.NodeOutput(det, ui={"text": [f"saved {os.path.basename(path)}"]})


class MoawLoadDeT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawLoadDeT", display_name="Load DeT Adapters", category=CATEGORY,
            description="Reads DeT adapters from models/moaw_det.",
            inputs=[io.Combo.Input("name", options=folder_paths.get_filename_list(paths.DET),
                                   tooltip="A file in models/moaw_det (refresh after saving).")],
            outputs=[DeTType.Output(display_name="det", tooltip="DeT adapters.")],
        )

    @classmethod
    def execute(cls, name) -> io.NodeOutput:
        return io.NodeOutput(load_adapters(folder_paths.get_full_path_or_raise(paths.DET, name)))


class MoawApplyDeT(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MoawApplyDeT", display_name="Apply DeT Adapters", category=CATEGORY,
            description="A MODEL clone with the adapters in its first blocks (the paper: first ~35 %), for KSampler.",
            inputs=[io.Model.Input("model", tooltip="The generator the adapters were trained on (same family/width)."),
                    DeTType.Input("det", tooltip="Trained adapters."),
                    io.Float.Input("fraction", default=0.35, min=0.01, max=1.0, step=0.01,
                                   tooltip="Share of the trained blocks, from the first, that get their adapter."),
                    io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.05,
                                   tooltip="Multiplies the adapters' output (1 = as trained, 0 = off).")],
            outputs=[io.Model.Output(display_name="model", tooltip="A clone of the model with the DeT adapters applied.")],
        )

    @classmethod
    def execute(cls, model, det, fraction, strength) -> io.NodeOutput:
        return io.NodeOutput(det_bridge.apply_det(model, det.adapters, fraction=fraction, scale=strength))


NODES = [MoawTrainDeT, MoawSaveDeT, MoawLoadDeT, MoawApplyDeT]
