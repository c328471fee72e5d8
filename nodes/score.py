"""ScoreMotionLayers: per-(layer, step) motion scores of a tracker or generator on the motion-labelled dataset.

`ComfyFeatureSource` adapts `bridge.capture_comfy` to the `moaw_core.selection.layer_selection.FeatureSource` protocol;
the node renders the dataset, encodes it with the VAE (VAE-space latents, as VAEEncode) and calls
`moaw_core.selection.layer_selection.score_dataset`.
"""
from __future__ import annotations

import comfy.model_management
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from moaw_core.engine.adapters import detect
from moaw_core.selection.layer_selection import SCORES, ScoreConfig, score_dataset
from moaw_core.selection.motion_dataset import GROUPS, MotionDatasetConfig

from .bridge import capture_comfy
from .extract import capture_tracker
from .types import CATEGORY, LayerScoresType, MoawTrackerType


class ComfyFeatureSource:
    """`(latents, layers, seed) -> MotionFeatures` through ComfyUI sampling.

    tracker: the tracker's own sampling (`extract.capture_tracker`) on the VAE latents.
    model (training-free): the VAE latents are noised to the `steps` levels of a (steps + 1)-step "simple"
    schedule after the first (pure noise) level and the model runs once per level.
    """

    def __init__(self, steps: int, tracker=None, model=None, positive=None):
        patcher = tracker.model if tracker is not None else model
        dm = patcher.model.diffusion_model
        self.tracker, self.model, self.positive, self.steps = tracker, model, positive, int(steps)
        self.layers = tuple(layer.name for layer in detect(dm).layers(dm))
        self.name = f"comfy {'tracker' if tracker is not None else 'training_free'} ({type(dm).__name__})"
        if tracker is None:
            ms = model.get_model_object("model_sampling")
            self.sigmas = comfy.samplers.calculate_sigmas(ms, "simple", self.steps + 1)[1:]

    def __call__(self, latents: torch.Tensor, layers, seed: int):
        if self.tracker is not None:
            return capture_tracker(self.tracker, latents, layers, self.steps, seed, positive=self.positive)[0]
        return capture_comfy(self.model, latents, self.positive, self.positive, self.sigmas, list(layers), seed,
                             mode="training_free", source=self.name)


class ScoreMotionLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ScoreMotionLayers",
            display_name="Score Motion Layers (Moaw)",
            category=CATEGORY,
            description="Renders clips with known camera/object motion, captures every block of the tracker (or, "
                        "training-free, of the generator) at each step, and scores how cleanly each (block, step) "
                        "separates the motion classes (Fisher ratio, silhouette, linear probe). Feed the scores to "
                        "Select Layers to choose the blocks to inject.",
            inputs=[
                MoawTrackerType.Input("tracker", optional=True,
                                      tooltip="Moaw tracker: its features while it samples tracks (the Moaw method). "
                                              "Connect this or model, not both."),
                io.Model.Input("model", optional=True,
                               tooltip="A video generator, scored training-free (noised source latents, one pass "
                                       "per noise level). Connect this or tracker, not both."),
                io.Vae.Input("vae",
                             tooltip="VAE that encodes the rendered clips (the demo codec for the demo models)."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="Condition of the capture passes; default all-zero text (1 token, "
                                              "width 4096, as the demo models and Wan expect)."),
                io.Combo.Input("classes", options=list(GROUPS), default="all",
                               tooltip="Motion classes: 6 camera motions over static scenes, 4 object directions "
                                       "over a static background, or both."),
                io.Int.Input("clips_per_class", default=4, min=2, max=256, tooltip="Clips rendered per class."),
                io.Int.Input("frames", default=8, min=2, max=257,
                             tooltip="Frames per clip (use 4k+1 for VAEs with 4x temporal compression)."),
                io.Int.Input("width", default=64, min=16, max=2048, step=8, tooltip="Clip width in pixels."),
                io.Int.Input("height", default=64, min=16, max=2048, step=8, tooltip="Clip height in pixels."),
                io.Float.Input("speed", default=2.0, min=0.25, max=64.0, step=0.25,
                               tooltip="Motion speed in pixels per frame (jittered +-25% per clip)."),
                io.Int.Input("steps", default=1, min=1, max=100,
                             tooltip="Tracker: its sampling steps (each is scored). Model: number of noise levels."),
                io.Int.Input("layers_per_pass", default=0, min=0, max=1000,
                             tooltip="Capture this many blocks per model pass (0 = all); lower it to bound memory on "
                                     "large models at the cost of more passes."),
                io.Combo.Input("rank_by", options=list(SCORES), default="probe",
                               tooltip="Score that ranks the table (and Select Layers' default)."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
                             tooltip="Scene, noise and fold seed."),
            ],
            outputs=[LayerScoresType.Output(display_name="scores",
                                            tooltip="Score table of every (layer, step), for Select Layers."),
                     io.Image.Output(display_name="heatmap", tooltip="The scores as a layer x step heat map.")],
        )

    @classmethod
    def execute(cls, vae, classes, clips_per_class, frames, width, height, speed, steps, layers_per_pass, rank_by,
                seed, tracker=None, model=None, positive=None) -> io.NodeOutput:
        if (tracker is None) == (model is None):
            raise ValueError("ScoreMotionLayers: connect exactly one of tracker or model")
        if tracker is None and positive is None:
            positive = [[torch.zeros(1, 1, 4096), {}]]  # a tracker defaults to its own (recorded) condition
        source = ComfyFeatureSource(steps, tracker=tracker, model=model, positive=positive)
        dcfg = MotionDatasetConfig(classes=classes, clips_per_class=clips_per_class, frames=frames, height=height,
                                   width=width, speed=speed, seed=seed)
        scfg = ScoreConfig(seed=seed, by=rank_by, layers_per_pass=layers_per_pass)
        pbar = comfy.utils.ProgressBar(1)

        def progress(done, total):
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, total)

        scores = score_dataset(source, lambda video: vae.encode(video), dcfg, scfg, progress=progress)
        return io.NodeOutput(scores, scores.heatmap_tensor())


NODES = [ScoreMotionLayers]
