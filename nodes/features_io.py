"""Save / load a motion-feature cache (one safetensors file in output/moaw_features)."""
from __future__ import annotations

import os

from comfy_api.latest import io

from moaw_core.engine.features import MotionFeatures

from . import feature_files
from .types import CATEGORY, MotionFeaturesType


class SaveMotionFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaveMotionFeatures", display_name="Save Motion Features", category=CATEGORY,
            description="Writes the features to a new file output/moaw_features/<name>_00001_.safetensors (the "
                        "number counts up as SaveImage's does, so no saved file is overwritten; atomic write).",
            inputs=[MotionFeaturesType.Input("features", tooltip="Features to save."),
                    io.String.Input("name", default="motion",
                                    tooltip="File name prefix (no folders); each save adds _00001_, _00002_, ...")],
            outputs=[MotionFeaturesType.Output(display_name="features", tooltip="The same features, passed through.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, features, name) -> io.NodeOutput:
        path = feature_files.save_new(features, name)
        return io.NodeOutput(features, ui={"text": [f"saved {os.path.basename(path)} ({features.nbytes / 2**20:.1f} MiB)"]})


class LoadMotionFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadMotionFeatures", display_name="Load Motion Features", category=CATEGORY,
            description="Reads a feature cache written by Save Motion Features or ExtractMotionFeatures.",
            inputs=[io.Combo.Input("name", options=feature_files.list_files(),
                                   tooltip="A file in output/moaw_features (refresh the page after saving).")],
            outputs=[MotionFeaturesType.Output(display_name="features", tooltip="The features read from the file.")],
        )

    @classmethod
    def fingerprint_inputs(cls, name):
        """A file replaced under the same name must reload (ComfyUI would otherwise reuse the cached output)."""
        try:
            return feature_files.fingerprint(feature_files.existing_path(name))
        except (OSError, ValueError):
            return float("nan")  # never equal to itself: execute runs and reports the error

    @classmethod
    def execute(cls, name) -> io.NodeOutput:
        return io.NodeOutput(MotionFeatures.load(feature_files.existing_path(name)))


NODES = [SaveMotionFeatures, LoadMotionFeatures]
