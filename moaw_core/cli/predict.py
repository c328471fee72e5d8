"""CLI verb `predict`: run a Moaw tracker file on a video and save its dense tracks.

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
    parser.add_argument("--tracker", default=str(TRACKER), help="tracker file (default: the bundled one)")
    parser.add_argument("--codec", default=str(CODEC), help="codec file (default: the bundled one)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--max-frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="default: the file's moaw.schedule steps")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                        help="refuse clips whose token count (frames x (H/8) x (W/8) for the demo codec) exceeds this: "
                             "attention work grows with its square")
    parser.add_argument("--out", default="out/tracks.safetensors")


# 8 frames at 512x512 for the demo codec (patch 4) and a Wan tracker (patch 2): ~16x the attention work of
# 256x256, which already takes about a minute on a busy CPU. The tracker was trained at 64x64.
MAX_TOKENS = 65_536


def check_request(size, max_frames: int, steps, max_tokens: int, width: int = 256, device="cpu") -> None:
    """Refuse a clip that is too large before anything is loaded. Tokens: frames x (H / 8) x (W / 8)."""
    require_ints(1, max_frames=max_frames, steps=steps, max_tokens=max_tokens)
    h, w = size
    require_ints(8, size=min(h, w))
    if h % 8 or w % 8:
        raise ValueError(f"size: height and width must be multiples of 8 (codec patch 4 x model patch 2), got {h} {w}")
    tokens = max_frames * (h // 8) * (w // 8)
    if tokens > max_tokens:
        raise ValueError(f"size/max-frames: {max_frames} frames at {h}x{w} make {tokens:,} tokens, more than "
                         f"--max-tokens {max_tokens:,} (attention work grows with the square: this would take "
                         f"{(tokens / 8192) ** 2:,.0f}x the work of 8 frames at 256x256); the tracker was trained at "
                         f"64x64: use a smaller --size, or raise --max-tokens on a big GPU")
    need = video_bytes(max_frames, h, w, copies=4) + activation_bytes(tokens, width)
    check_fits(need, device, f"predict at {max_frames} frames of {h}x{w}", "use a smaller --size or --max-frames")


def main(args: argparse.Namespace) -> int:
    from moaw_core.data.real import load_video

    check_request(tuple(args.size), args.max_frames, args.steps, args.max_tokens)
    for name in ("tracker", "codec"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file {getattr(args, name)}")
    video = load_video(args.video, max_frames=args.max_frames, size=tuple(args.size))
    if video.shape[0] < 2:
        raise ValueError(f"video: {args.video} has {video.shape[0]} readable frame(s); tracking needs at least 2")
    tracks = predict_video(args.tracker, args.codec, video, args.steps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sd = {"xy": tracks.xy.contiguous(), "visible": tracks.visible.to(torch.uint8).contiguous()}
    if tracks.depth is not None:
        sd["depth"] = tracks.depth.contiguous()
    save_file(sd, str(out))
    print(f"wrote {out}: {tuple(tracks.xy.shape)}")
    return 0
