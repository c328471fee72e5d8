"""CLI verb `predict`: run a Moaw tracker file on a video and save its dense tracks.

Any length and size: the tracker runs at --work-height (its training size) on --window-frame windows that
are chained into first-frame-anchored tracks and upsampled to the video (`MoawTracker.predict_tracks_long`).

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
                  steps: int | None = None, seed: int = 0, window: int = 8, stride: int | None = None,
                  work_height: int | None = 64) -> DenseTracks:
    """Args: video [T,H,W,3] in [0,1], any T >= 1 and size; window/stride/work_height as
    `MoawTracker.predict_tracks_long` (work_height None: the video's own size, rounded to multiples of 8).
    Returns DenseTracks [T,H,W] at the video's resolution."""
    tracker, codec, tcodec, meta = load_demo(tracker_path, codec_path)
    return tracker.predict_tracks_long(video, codec, tcodec, window, stride, work_height, seed=seed,
                                       **sampling_defaults(meta, steps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--tracker", default="models/trackers/moaw_tiny_wan_tracker.safetensors")
    parser.add_argument("--codec", default="models/codecs/moaw_patch_pca_codec.safetensors")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="resize the video first (default: its own size; tracks come at this size)")
    parser.add_argument("--max-frames", type=int, default=0, help="0 = every frame")
    parser.add_argument("--window", type=int, default=8, help="frames per tracker call (its training length)")
    parser.add_argument("--stride", type=int, default=None, help="frames between window anchors (default window-1)")
    parser.add_argument("--work-height", type=int, default=64,
                        help="the tracker runs at this height (its training size); 0 = the video's size")
    parser.add_argument("--steps", type=int, default=None, help="default: the file's moaw.schedule steps")
    parser.add_argument("--out", default="out/tracks.safetensors")


def main(args: argparse.Namespace) -> int:
    from moaw_core.data.real import load_video

    video = load_video(args.video, max_frames=args.max_frames or None,
                       size=tuple(args.size) if args.size else None)
    tracks = predict_video(args.tracker, args.codec, video, args.steps, window=args.window, stride=args.stride,
                           work_height=args.work_height or None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {"xy": tracks.xy.contiguous(), "visible": tracks.visible.to(torch.uint8).contiguous()}
    if tracks.depth is not None:
        sd["depth"] = tracks.depth.contiguous()
    save_file(sd, str(out))
    print(f"wrote {out}: {tuple(tracks.xy.shape)}")
    return 0
