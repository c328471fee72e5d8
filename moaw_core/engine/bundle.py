"""A Moaw setup loaded from its files, as the verbs (demo, bench, DeT, eval, predict) use it.

- `Models` / `load_models`: generator (+ its I2V layout), tracker (+ its metadata and recorded sampling), codec.
- `resolve_layers`: the blocks to capture and inject (a layer spec, else `<tracker>.layers.json`, else all).
- `load_tracker_codec`: a tracker with the demo codec and its track codec (tracks in, tracks out).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from moaw_core.cli import MODELS
from moaw_core.engine import i2v
from moaw_core.engine.checkpoint import load_backbone, load_tracker, sampling_defaults
from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec


@dataclass
class Models:
    """The three files of a Moaw setup, loaded: generator (+ its I2V layout), tracker (+ metadata), codec."""

    generator: torch.nn.Module
    tracker: torch.nn.Module
    tracker_meta: dict
    codec: PatchPCACodec
    layout: i2v.I2VLayout | None = None

    def sampling(self, steps: int | None = None) -> dict:
        """The tracker's recorded schedule (steps, shift, init_noise); `steps` overrides."""
        return sampling_defaults(self.tracker_meta, steps)


def load_models(generator, tracker, codec, who: str = "demo") -> Models:
    """Load the model files, raising FileNotFoundError naming a missing one."""
    for name, path in (("generator", generator), ("tracker", tracker), ("codec", codec)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{who}: {name} model file {path} not found (the bundled models live in "
                                    f"{MODELS}; train them with the commands in docs/TRAINING.md)")
    trk, _, meta = load_tracker(tracker)
    gen, gen_meta = load_backbone(generator, "generator")
    return Models(gen, trk, meta, PatchPCACodec.load(codec), i2v.layout_of(gen, gen_meta))


def resolve_layers(spec: str, tracker: torch.nn.Module, tracker_path) -> list[str]:
    """Layers to capture and inject: a layer spec (`moaw_core.engine.layer_spec`); when empty, the selection stored
    next to the tracker file (`<tracker>.layers.json`: its chosen blocks and the rule that chose them), else every block."""
    from moaw_core.engine.adapters import detect
    from moaw_core.engine.layer_spec import parse_layer_spec

    available = [lay.name for lay in detect(tracker.backbone).layers(tracker.backbone)]
    if spec:
        return parse_layer_spec(spec, available)
    stored = Path(tracker_path).with_suffix(".layers.json")
    if stored.is_file():
        return parse_layer_spec(",".join(json.loads(stored.read_text())["selection"]), available)
    return available


def load_tracker_codec(tracker_path: str | Path, codec_path: str | Path):
    """(MoawTracker, PatchPCACodec, TrackCodec, metadata) for a tracker trained on the demo codec."""
    tracker, enc, meta = load_tracker(tracker_path)
    codec = PatchPCACodec.load(codec_path)
    return tracker, codec, TrackCodec(codec, enc), meta
