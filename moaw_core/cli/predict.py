"""CLI verb `predict`: run a Moaw tracker file on a video and save its dense tracks.

Output: one safetensors file with `xy` [T,H,W,2], `visible` [T,H,W] (uint8) and `depth` [T,H,W]
(`moaw_core.tracking.tracks.DenseTracks` layout), plus optional colour-wheel preview PNGs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from moaw_core.engine.checkpoint import load_tracker, sampling_defaults
from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec
from moaw_core.tracking.tracks import DenseTracks


def load_demo(tracker_path: str | Path, codec_path: str | Path):
    """(MoawTracker, PatchPCACodec, TrackCodec, metadata) for a tracker trained on the demo codec."""
    tracker, enc, meta = load_tracker(tracker_path)
    codec = PatchPCACodec.load(codec_path)
    return tracker, codec, TrackCodec(codec, enc), meta


def predict_video(tracker_path: str | Path, codec_path: str | Path, video: torch.Tensor,
                  steps: int | None = None, seed: int = 0) -> DenseTracks:
    """Args: video [T,H,W,3] in [0,1] (H, W multiples of the codec patch x 2). Returns DenseTracks."""
    tracker, codec, tcodec, meta = load_demo(tracker_path, codec_path)
    return tracker.predict_tracks(video, codec, tcodec, seed=seed, **sampling_defaults(meta, steps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--tracker", default="models/trackers/moaw_tiny_wan_tracker.safetensors")
    parser.add_argument("--codec", default="models/codecs/moaw_patch_pca_codec.safetensors")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--max-frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="default: the file's moaw.schedule steps")
    parser.add_argument("--out", default="out/tracks.safetensors")


def main(args: argparse.Namespace) -> int:
    from moaw_core.data.real import load_video

    video = load_video(args.video, max_frames=args.max_frames, size=tuple(args.size))
    tracks = predict_video(args.tracker, args.codec, video, args.steps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {"xy": tracks.xy.contiguous(), "visible": tracks.visible.to(torch.uint8).contiguous()}
    if tracks.depth is not None:
        sd["depth"] = tracks.depth.contiguous()
    save_file(sd, str(out))
    print(f"wrote {out}: {tuple(tracks.xy.shape)}")
    return 0
