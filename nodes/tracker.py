"""LoadMoawTracker: a tracker checkpoint (Moaw model file) as a ComfyUI model with its Moaw metadata."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import comfy.latent_formats
import comfy.model_sampling
import comfy.sd
import folder_paths
from comfy_api.latest import io

from moaw_core.engine.checkpoint import check_finite_weights, read_checkpoint, tracker_meta

from . import paths
from .types import CATEGORY, MoawTrackerType


class TrackLatentFormat(comfy.latent_formats.LatentFormat):
    """Track latents are the tracker's own space: no VAE scaling in or out."""

    latent_dimensions = 3

    def __init__(self, channels: int):
        self.latent_channels = channels
        self.scale_factor = 1.0


_SOURCE_FORMATS = {"wan2.1": comfy.latent_formats.Wan21}


@dataclass
class MoawTracker:
    """What flows on a MOAW_TRACKER socket: the tracker as a ComfyUI ModelPatcher plus its metadata.

    `source_format` maps VAE-space source latents to the tracker's model space (its base model's latent format).
    """

    model: object  # comfy.model_patcher.ModelPatcher
    meta: dict = field(repr=False)
    name: str = ""

    @property
    def track_channels(self) -> int:
        return int(json.loads(self.meta["moaw.source_input"])["track_latents"][1])

    @property
    def video_channels(self) -> int:
        a, b = json.loads(self.meta["moaw.source_input"])["video_latents"]
        return int(b - a)

    @property
    def source_format(self):
        return _SOURCE_FORMATS[self.meta["moaw.base_architecture"]]()


def load_tracker(path: str, name: str = "") -> MoawTracker:
    """Read a Moaw tracker file and build it as a native ComfyUI model. Clear errors for foreign files."""
    sd, meta = read_checkpoint(path)
    if meta.get("moaw.kind") != "tracker":
        raise ValueError(f"{name or path} is a Moaw {meta.get('moaw.kind')} file, not a tracker: load generators "
                         f"with 'Load Diffusion Model' (UNETLoader)")
    arch = meta.get("moaw.base_architecture")
    if arch not in _SOURCE_FORMATS or meta.get("moaw.key_format") != "wan-original":
        raise ValueError(f"{name or path}: trackers of base architecture {arch!r} ({meta.get('moaw.key_format')} "
                         f"keys) cannot be loaded in ComfyUI yet; supported: {sorted(_SOURCE_FORMATS)}")
    info = tracker_meta(meta, name or path)
    check_finite_weights(sd, name or path)
    stored = set(sd)  # ComfyUI consumes the dict while loading
    patcher = comfy.sd.load_diffusion_model_state_dict(sd)
    if patcher is None:
        raise ValueError(f"{name or path}: ComfyUI could not detect the model type of this tracker")
    _check_complete(patcher, stored, info["config"], name or path)
    tracker = MoawTracker(patcher, meta, name)
    # The tracker samples track latents (its own space), not VAE latents. This BaseModel was just built here
    # and belongs to the tracker alone, so its latent format is set directly (an object patch would only apply
    # while the model is loaded, making process_latent_in depend on load state).
    patcher.model.latent_format = TrackLatentFormat(tracker.track_channels)
    patcher.model.model_config.latent_format = patcher.model.latent_format
    _set_schedule(patcher, info["schedule"])
    return tracker


def _check_complete(patcher, stored: set[str], config: dict, where: str) -> None:
    """The built model must use every stored tensor and miss none (ComfyUI only logs such mismatches)."""
    expected = set(patcher.model.diffusion_model.state_dict())
    missing, unexpected = sorted(expected - stored), sorted(stored - expected)
    if missing or unexpected:
        raise ValueError(f"{where}: the tracker file is incomplete or damaged: {len(missing)} weight(s) missing "
                         f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    blocks = len({k.split(".")[1] for k in stored if k.startswith("blocks.")})
    if "num_layers" in config and blocks != config["num_layers"]:
        raise ValueError(f"{where}: the file holds {blocks} blocks, its moaw.config says {config['num_layers']}")


def _set_schedule(patcher, schedule: dict) -> None:
    """Sample the tracker with the flow shift it was trained for (ComfyUI's Wan default is 8)."""
    if schedule.get("parameterization", "flow") != "flow":
        raise ValueError(f"tracker schedule {schedule.get('parameterization')!r} is not supported (flow only)")

    class TrackerSampling(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
        pass

    sampling = TrackerSampling(patcher.model.model_config)
    sampling.set_parameters(shift=float(schedule.get("shift", 1.0)), multiplier=1000)
    patcher.add_object_patch("model_sampling", sampling)


class LoadMoawTracker(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadMoawTracker",
            display_name="Load Moaw Tracker",
            category=CATEGORY,
            description="Loads a Moaw tracker (a video diffusion model fine-tuned to predict dense point tracks) "
                        "from models/moaw_trackers. Its block features drive motion transfer.",
            inputs=[
                io.Combo.Input("tracker_name", options=folder_paths.get_filename_list(paths.TRACKERS),
                               tooltip="Tracker checkpoint (.safetensors with Moaw metadata) in "
                                       "models/moaw_trackers; the bundled tiny demo tracker is listed too."),
            ],
            outputs=[MoawTrackerType.Output(display_name="tracker", tooltip="The tracker model with its Moaw metadata.")],
        )

    @classmethod
    def execute(cls, tracker_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(paths.TRACKERS, tracker_name)
        return io.NodeOutput(load_tracker(path, tracker_name))


NODES = [LoadMoawTracker]
