"""Benchmark the synthetic clip generators (2-D layers and 3-D scenes; clips/s on CPU) and the 8-bit
track-image round trip.

Usage: python bench/bench_synth.py [--clips N] [--threads K] [--out result.json]
Writes one JSON object to stdout (and to --out if given).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset  # noqa: E402
from moaw_core.data.synth import SynthConfig, SynthDataset  # noqa: E402
from moaw_core.tracking.tracks import roundtrip_error, unpack_tracks  # noqa: E402

SIZES = ((8, 64, 64), (16, 128, 128))


def bench_size(frames: int, height: int, width: int, clips: int, max_disp: float, kind: str = "synth") -> dict:
    if kind == "synth":
        ds = SynthDataset(SynthConfig(frames=frames, height=height, width=width), length=clips + 1, seed=0)
    else:
        ds = Scenes3DDataset(Scene3DConfig(frames=frames, height=height, width=width), length=clips + 1, seed=0)
    ds[clips]  # warm-up
    start = time.perf_counter()
    items = [ds[i] for i in range(clips)]
    elapsed = time.perf_counter() - start
    errs = [roundtrip_error(unpack_tracks(p), max_disp, quantize_bits=8) for _, p in items]
    keys = ("mean_px", "max_px", "mean_px_unclipped", "max_px_unclipped", "clipped_frac", "visibility_acc",
            "depth_abs_err")
    return {
        "kind": kind,
        "size": f"{frames}x{height}x{width}",
        "clips": clips,
        "seconds": round(elapsed, 3),
        "clips_per_s": round(clips / elapsed, 2),
        # max_* keys: worst clip; the others: mean over clips.
        "roundtrip_8bit": {k: round(max(e[k] for e in errs) if k.startswith("max")
                                    else sum(e[k] for e in errs) / len(errs), 5) for k in keys},
        "max_disp": max_disp,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20, help="clips timed per size")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {
        "bench": "synth",
        "device": "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        # max_disp = half the image width: default SynthConfig motion is then never clipped.
        "results": [bench_size(t, h, w, args.clips, max_disp=w / 2, kind=k) for k in ("synth", "scenes3d")
                    for t, h, w in SIZES],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
