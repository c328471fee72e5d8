"""SelectLayers: keep the chosen layers of a feature cache (by name, range or top-k of a score table)."""
from __future__ import annotations

from comfy_api.latest import io

from moaw_core.engine.layer_spec import parse_layer_spec

from .types import CATEGORY, LayerScoresType, MotionFeaturesType


class SelectLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SelectLayers",
            display_name="Select Motion Layers",
            category=CATEGORY,
            description="Keeps a subset of the recorded layers. The chosen layers are shown on the node.",
            inputs=[
                MotionFeaturesType.Input("features", tooltip="Features from ExtractMotionFeatures."),
                io.String.Input("layers", default="all",
                                tooltip="'all', names ('block.3'), ranges ('block.2-5'), or 'top-3' / 'top-3:fisher' "
                                        "with a score table connected; comma-separated."),
                LayerScoresType.Input("scores", optional=True,
                                      tooltip="Layer score table from ScoreMotionLayers, for 'top-k' selections."),
            ],
            outputs=[MotionFeaturesType.Output(display_name="features", tooltip="Only the chosen layers."),
                     io.String.Output(display_name="layers",
                                      tooltip="The chosen layer names, comma-separated (also shown on the node).")],
        )

    @classmethod
    def execute(cls, features, layers, scores=None) -> io.NodeOutput:
        names = parse_layer_spec(layers, features.layers, scores)
        chosen = ", ".join(names)
        return io.NodeOutput(features.subset(names), chosen, ui={"text": [chosen]})


NODES = [SelectLayers]
