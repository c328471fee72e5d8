"""ExtractMotionFeatures: run the tracker (or any MODEL, training-free) on a source latent and cache block features."""
from __future__ import annotations

import json
import os

import node_helpers
import torch
from comfy_api.latest import io

from moaw_core.engine.adapters import detect
from moaw_core.engine.checkpoint import sampling_defaults
from moaw_core.engine.features import MotionFeatures
from moaw_core.engine.layer_spec import parse_layer_spec
from moaw_core.engine.schedule import flow_sigmas

from . import feature_files
from .bridge import capture_comfy
from .types import CATEGORY, MotionFeaturesType, MoawTrackerType


def _tracker_condition(tracker) -> list:
    """The tracker's own condition: zero text context of its text width (it was trained on it)."""
    text_dim = int(json.loads(tracker.meta.get("moaw.config", "{}")).get("text_dim", 4096))
    return [[torch.zeros(1, 1, text_dim), {}]]


def capture_tracker(tracker, src: torch.Tensor, layers, steps: int, seed: int, cfg: float = 1.0, positive=None,
                    negative=None):
    """The tracker's own sampling on a VAE-space source latent, recording `layers`. Returns (features, samples).

    The source enters through ComfyUI's own channel concat (WAN21.concat_cond, as for I2V models), in the
    tracker's model space (its base model's latent format maps VAE space to it). The schedule and start noise are
    the core's (`schedule.flow_sigmas` with the file's shift; one-step regression trackers start from zeros), so
    the node samples exactly what `moaw_core.engine.transfer.extract_tracker_features` samples."""
    src_model_space = tracker.source_format.process_in(src.float())
    pos = positive if positive is not None else _tracker_condition(tracker)
    neg = negative if negative is not None else pos
    pos, neg = (node_helpers.conditioning_set_values(c, {"concat_latent_image": src_model_space}) for c in (pos, neg))
    empty = torch.zeros(src.shape[0], tracker.track_channels, *src.shape[2:])
    recorded = sampling_defaults(tracker.meta)
    sigmas = flow_sigmas(int(steps), recorded["shift"])  # the core's schedule: both hosts sample the same sigmas
    return capture_comfy(tracker.model, empty, pos, neg, sigmas, list(layers), seed=seed, mode="tracker", cfg=cfg,
                         return_samples=True, source=f"tracker {tracker.name}",
                         zero_noise=recorded["init_noise"] == "zeros")


def extract(source: dict, layers: str, steps: int, seed: int, cfg: float, tracker=None, model=None,
            positive=None, negative=None) -> tuple[MotionFeatures, dict]:
    """Validate the inputs and run the capture. Returns (features, LATENT of the capture's final samples)."""
    if (tracker is None) == (model is None):
        raise ValueError("ExtractMotionFeatures: connect exactly one feature source: a Moaw tracker "
                         "(LoadMoawTracker) or a MODEL (training-free)")
    if not isinstance(source, dict) or not isinstance(source.get("samples"), torch.Tensor):
        raise ValueError("ExtractMotionFeatures: source must be a LATENT (e.g. from VAEEncode of the source frames)")
    src = source["samples"]
    if tracker is not None:
        patcher = tracker.model
        dm = patcher.model.diffusion_model
        if src.ndim != 5 or src.shape[1] != tracker.video_channels:
            raise ValueError(f"ExtractMotionFeatures: the tracker expects a video latent with {tracker.video_channels} "
                             f"channels [B, C, T, H, W], got {tuple(src.shape)} (encode the frames with the VAE "
                             f"of the tracker's base model)")
        names = parse_layer_spec(layers, [lay.name for lay in detect(dm).layers(dm)])
        feats, out = capture_tracker(tracker, src, names, steps, seed, cfg, positive, negative)
        return feats, {"samples": out}
    if positive is None:
        raise ValueError("ExtractMotionFeatures: training-free extraction from a MODEL needs positive conditioning")
    dm = model.model.diffusion_model
    names = parse_layer_spec(layers, [lay.name for lay in detect(dm).layers(dm)])
    feats, out = capture_comfy(model, source, positive, negative if negative is not None else positive, steps,
                               names, seed=seed, mode="training_free", cfg=cfg, return_samples=True,
                               source="training-free")
    return feats, {"samples": out}


class ExtractMotionFeatures(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ExtractMotionFeatures",
            display_name="Extract Motion Features",
            category=CATEGORY,
            description="Runs a Moaw tracker on the source video latent (or any video MODEL, training-free) and "
                        "records the chosen blocks' features at every step, for InjectMotionSampler.",
            inputs=[
                io.Latent.Input("source", tooltip="Source video latent (VAEEncode of the source frames)."),
                io.String.Input("layers", default="all",
                                tooltip="Blocks to record: 'all', names like 'block.3, block.5-7'. Record many, "
                                        "pick later with SelectLayers."),
                io.Int.Input("steps", default=4, min=1, max=200,
                             tooltip="Tracker: its sampling steps. Training-free: number of noise levels to record "
                                     "(the model's schedule for that many steps)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Noise seed of the capture."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=30.0, step=0.1,
                               tooltip="Guidance during capture; 1.0 runs the positive pass only (fastest)."),
                MoawTrackerType.Input("tracker", optional=True, tooltip="A Moaw tracker (LoadMoawTracker)."),
                io.Model.Input("model", optional=True,
                               tooltip="Instead of a tracker: any supported video MODEL as a training-free feature "
                                       "source (use remove_content when injecting)."),
                io.Conditioning.Input("positive", optional=True,
                                      tooltip="Conditioning of the capture pass (trackers default to their own zero "
                                              "condition; a MODEL needs one)."),
                io.Conditioning.Input("negative", optional=True, tooltip="Only used when cfg != 1."),
                io.String.Input("cache_name", default="", optional=True,
                                tooltip="If set, features are saved to a new file output/moaw_features/<name>_00001_.safetensors."),
            ],
            outputs=[MotionFeaturesType.Output(display_name="features",
                                               tooltip="Recorded block features of every chosen layer and step."),
                     io.Latent.Output(display_name="tracks",
                                      tooltip="Tracker: predicted track latents. Training-free: last x0 prediction.")],
        )

    @classmethod
    def execute(cls, source, layers, steps, seed, cfg, tracker=None, model=None, positive=None, negative=None,
                cache_name="") -> io.NodeOutput:
        if cache_name:
            feature_files.check_name(cache_name, "cache_name")  # before the capture, not after minutes of work
        feats, tracks = extract(source, layers, steps, seed, cfg, tracker, model, positive, negative)
        text = f"{len(feats.layers)} layers x {len(feats.steps)} steps, {feats.nbytes / 2**20:.1f} MiB"
        if cache_name:
            path = feature_files.save_new(feats, cache_name, "cache_name")
            text += f"; saved {os.path.basename(path)}"
        return io.NodeOutput(feats, tracks, ui={"text": [text]})


NODES = [ExtractMotionFeatures]
