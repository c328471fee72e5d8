"""Save / load a motion-feature cache (one safetensors file in output/moaw_features)."""
from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from moaw_core.engine.features import MotionFeatures

from .extract import FEATURES_DIR, features_path
from .types import CATEGORY, MotionFeaturesType


def _cached_files() -> list[str]:
    base = os.path.join(folder_paths.get_output_directory(), FEATURES_DIR)
    if not os.path.isdir(base):
        return []
    return sorted(f for f in os.listdir(base) if f.endswith(".safetensors"))


class SaveMotionFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SaveMotionFeatures", display_name="Save Motion Features", category=CATEGORY,
            description="Writes the features to output/moaw_features/<name>.safetensors (atomic write).",
            inputs=[MotionFeaturesType.Input("features", tooltip="Features to save."),
                    io.String.Input("name", default="motion", tooltip="File name (no folders).")],
            outputs=[MotionFeaturesType.Output(display_name="features", tooltip="The same features, passed through.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, features, name) -> io.NodeOutput:
        path = features.save(features_path(name))
        return io.NodeOutput(features, ui={"text": [f"saved {os.path.basename(path)} ({features.nbytes / 2**20:.1f} MiB)"]})


class LoadMotionFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadMotionFeatures", display_name="Load Motion Features", category=CATEGORY,
            description="Reads a feature cache written by Save Motion Features or ExtractMotionFeatures.",
            inputs=[io.Combo.Input("name", options=_cached_files(),
                                   tooltip="A file in output/moaw_features (refresh the page after saving).")],
            outputs=[MotionFeaturesType.Output(display_name="features", tooltip="The features read from the file.")],
        )

    @classmethod
    def execute(cls, name) -> io.NodeOutput:
        return io.NodeOutput(MotionFeatures.load(features_path(name)))


NODES = [SaveMotionFeatures, LoadMotionFeatures]
