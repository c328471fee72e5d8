"""Benchmark the Moaw tracker's dense tracking time against OpenCV DIS at several resolutions (issue #16's target:
at most 10x DIS at the same resolution on CPU), with and without the coarse-to-fine refinement, and the accuracy of
each on the same clips (3-D scenes of the validation seed 5, never the held-out seed 1).

Usage: python bench/bench_tracker.py [--tracker F] [--clips N] [--sizes 128 256] [--threads K] [--out result.json]
Every method is timed on the same clips after one untimed warm-up; ratios are within one run. Writes one JSON
object to stdout (and to --out).
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
from moaw_core.cli import CODEC, TRACKER  # noqa: E402
from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset  # noqa: E402
from moaw_core.engine.bundle import load_tracker_codec  # noqa: E402
from moaw_core.engine.checkpoint import sampling_defaults  # noqa: E402
from moaw_core.metrics.tracking import track_metrics  # noqa: E402
from moaw_core.tracking import cv_trackers  # noqa: E402
from moaw_core.tracking.tracks import dense_to_sparse, grid_points, sparse_from_grid, unpack_tracks  # noqa: E402


def bench_size(model, size: int, frames: int, clips: int, seed: int = 5) -> dict:
    tracker, codec, tcodec, kw = model
    # motion in proportion to the size (2x the training range at 128 px, as the held-out scenes)
    ds = Scenes3DDataset(Scene3DConfig(frames=frames, height=size, width=size, motion_scale=2.0 * size / 128),
                         clips, seed)
    methods = {
        "tracker_refined": lambda v: tracker.predict_tracks_long(v, codec, tcodec, **kw),
        "tracker_64px": lambda v: tracker.predict_tracks_long(v, codec, tcodec, refine=False, **kw),
        "dis": cv_trackers.track_dense_dis,
    }
    pts = grid_points(size, size, 16)
    secs = {m: 0.0 for m in methods}
    acc = {m: [] for m in methods}
    for i in range(clips):
        video, packed = ds[i]
        gp, gv = sparse_from_grid(unpack_tracks(packed), 16)
        for m, fn in methods.items():
            if i == 0:
                fn(video)  # warm-up
            t0 = time.perf_counter()
            tr = fn(video)
            secs[m] += time.perf_counter() - t0
            p, v = dense_to_sparse(tr, pts)
            acc[m].append(track_metrics(p.numpy(), v.numpy(), gp.numpy(), gv.numpy())["delta_avg"])
    return {"size": f"{frames}x{size}x{size}", "clips": clips, "seed": seed,
            "seconds_per_clip": {m: round(s / clips, 4) for m, s in secs.items()},
            "ratio_to_dis": {m: round(s / secs["dis"], 2) for m, s in secs.items()},
            "delta_avg": {m: round(sum(a) / len(a), 4) for m, a in acc.items()}}


def main(argv=None) -> int:
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker", default=str(TRACKER))
    ap.add_argument("--codec", default=str(CODEC))
    ap.add_argument("--clips", type=int, default=6, help="clips timed per size")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.clips < 1 or args.frames < 2 or min(args.sizes) < 64 or any(s % 8 for s in args.sizes):
        raise SystemExit("--clips >= 1, --frames >= 2, --sizes multiples of 8 and >= 64")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    tracker, codec, tcodec, meta = load_tracker_codec(args.tracker, args.codec)
    model = (tracker, codec, tcodec, sampling_defaults(meta, None))
    result = {"bench": "tracker", "device": "cpu", "cpu": platform.processor() or platform.machine(),
              "threads": args.threads, "torch": torch.__version__, "tracker": Path(args.tracker).name,
              "runs": [bench_size(model, s, args.frames, args.clips) for s in args.sizes]}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
