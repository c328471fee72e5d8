"""CLI verb `predict`: run a Moaw tracker file on a video and save its dense tracks.

Any length and size: the tracker runs at --work-height (its training size) on --window-frame windows that
are chained into first-frame-anchored tracks and upsampled to the video, then (--refine, the default) refined
coarse to fine up to the video's resolution by the tracker on 64 x 64 tiles of frames warped to frame 0
(`MoawTracker.predict_tracks_long`).

Output: one safetensors file with `xy` [T,H,W,2], `visible` [T,H,W] (uint8) and `depth` [T,H,W]
(`moaw_core.tracking.tracks.DenseTracks` layout), plus optional colour-wheel preview PNGs.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from moaw_core.cli import CODEC, TRACKER
from moaw_core.cli.limits import activation_bytes, check_fits, require_ints, video_bytes
from moaw_core.engine.bundle import load_tracker_codec
from moaw_core.engine.checkpoint import sampling_defaults
from moaw_core.tracking.tracks import DenseTracks


def predict_video(tracker_path: str | Path, codec_path: str | Path, video: torch.Tensor,
                  steps: int | None = None, seed: int = 0, window: int = 8, stride: int | None = None,
                  work_height: int | None = 64, batch: int = 8, flip_average: bool = False,
                  refine: bool = True, refine_max_height: int | None = None, base_smooth: int = 11,
                  refine_smooth: int = 8) -> DenseTracks:
    """Args: video [T,H,W,3] in [0,1], any T >= 1 and size; window/stride/work_height/batch/refine/refine_max_height/
    base_smooth/refine_smooth as `MoawTracker.predict_tracks_long` (work_height None: the video's own size, rounded to multiples of 8);
    flip_average as `MoawTracker.predict_tracks_batch`.
    Returns DenseTracks [T,H,W] at the video's resolution."""
    tracker, codec, tcodec, meta = load_tracker_codec(tracker_path, codec_path)
    return tracker.predict_tracks_long(video, codec, tcodec, window, stride, work_height, batch=batch, seed=seed,
                                       flip_average=flip_average, refine=refine, refine_max_height=refine_max_height,
                                       base_smooth=base_smooth, refine_smooth=refine_smooth, progress=True,
                                       **sampling_defaults(meta, steps))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file or folder of frames")
    parser.add_argument("--tracker", default=str(TRACKER), help="tracker file (default: the bundled one)")
    parser.add_argument("--codec", default=str(CODEC), help="codec file (default: the bundled one)")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="resize the video first (default: its own size; tracks come at this size)")
    parser.add_argument("--max-frames", type=int, default=0, help="0 = every frame")
    parser.add_argument("--window", type=int, default=8, help="frames per tracker call (its training length)")
    parser.add_argument("--stride", type=int, default=None, help="frames between window anchors (default window-1)")
    parser.add_argument("--work-height", type=int, default=64,
                        help="the tracker runs at this height (its training size); 0 = the video's size")
    parser.add_argument("--steps", type=int, default=None, help="default: the file's moaw.schedule steps")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=False,
                        help="average with the tracks of the mirrored clip (2x the work)")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="refine coarse to fine with the tracker up to the video's resolution (64 px tiles)")
    parser.add_argument("--refine-max-height", type=int, default=0,
                        help="refine up to this height at most (0 = the video's; bounds the cost on large videos)")
    parser.add_argument("--base-smooth", type=int, default=11,
                        help="box filter (px at the work height) on the base windows' motion before refining; 0 = off")
    parser.add_argument("--refine-smooth", type=int, default=8,
                        help="box filter (px) on each refinement level's stitched residual (8 = a token); 0 = off")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                        help="refuse tracker calls of more tokens (window x (H/8) x (W/8) at the work size): "
                             "attention work grows with its square")
    parser.add_argument("--out", default="out/tracks.safetensors")


# 8 frames at 512x512 for the demo codec (patch 4) and a Wan tracker (patch 2): ~16x the attention work of
# 256x256, which already takes about a minute on a busy CPU. The tracker was trained at 64x64.
MAX_TOKENS = 65_536
_VIDEO_COPIES = 9  # decoded frames, float video, resized copy, tracks (xy, visible, depth), upsampling, refinement


def check_request(args: argparse.Namespace, frames: int, height: int, width: int, device="cpu") -> int:
    """Refuse a request that is too large before any frame is decoded or model loaded. `frames`, `height`,
    `width`: the clip as it will be tracked (after --max-frames and --size). Returns the windows per tracker
    call (up to 8, as many as fit in --max-tokens)."""
    require_ints(1, steps=args.steps, max_tokens=args.max_tokens, stride=args.stride)
    require_ints(0, max_frames=args.max_frames, work_height=args.work_height, refine_max_height=args.refine_max_height,
                 base_smooth=args.base_smooth, refine_smooth=args.refine_smooth)
    require_ints(2, window=args.window)
    if args.size is not None:
        require_ints(8, size=min(args.size))
    if frames < 2:
        raise ValueError(f"video: {args.video} has {frames} frame(s); tracking needs at least 2")
    work_h = args.work_height or height
    work_w = max(8, round(width * work_h / height / 8) * 8)
    tokens = min(args.window, frames) * (work_h // 8) * (work_w // 8)
    if tokens > args.max_tokens:
        raise ValueError(f"work-height/window: one tracker call on {min(args.window, frames)} frames at {work_h}x{work_w} "
                         f"makes {tokens:,} tokens, more than --max-tokens {args.max_tokens:,} (attention work grows "
                         f"with the square: {(tokens / 8192) ** 2:,.0f}x that of 8 frames at 256x256); the tracker was "
                         f"trained at 64x64: keep --work-height 64, or raise --max-tokens on a big GPU")
    batch = max(1, min(8, args.max_tokens // tokens))
    need = video_bytes(frames, height, width, copies=_VIDEO_COPIES) + activation_bytes(tokens * batch, 256)
    check_fits(need, device, f"predict on {frames} frames of {height}x{width}",
               "use a smaller --size or fewer --max-frames")
    return batch


def main(args: argparse.Namespace) -> int:
    from moaw_core.data.real import load_video, probe_video

    for name in ("tracker", "codec"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file {getattr(args, name)}")
    frames, height, width = probe_video(args.video)
    frames = min(frames, args.max_frames) if args.max_frames and args.max_frames > 0 else frames
    height, width = tuple(args.size) if args.size else (height, width)
    batch = check_request(args, frames, height, width)
    video = load_video(args.video, max_frames=args.max_frames or None,
                       size=tuple(args.size) if args.size else None)
    if video.shape[0] < 2:
        raise ValueError(f"video: {args.video} has {video.shape[0]} readable frame(s); tracking needs at least 2")
    tracks = predict_video(args.tracker, args.codec, video, args.steps, window=args.window, stride=args.stride,
                           work_height=args.work_height or None, batch=batch, flip_average=args.flip_average,
                           refine=args.refine, refine_max_height=args.refine_max_height or None,
                           base_smooth=args.base_smooth, refine_smooth=args.refine_smooth)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {"xy": tracks.xy.contiguous(), "visible": tracks.visible.to(torch.uint8).contiguous()}
    if tracks.depth is not None:
        sd["depth"] = tracks.depth.contiguous()
    save_file(sd, str(out))
    print(f"wrote {out}: {tuple(tracks.xy.shape)}")
    return 0
