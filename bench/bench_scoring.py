"""Benchmark layer scoring (`moaw_core.selection.layer_selection.score_layers`): time and peak memory per layers_per_pass.

The model is a random-init tracker built like the demo one (Wan, dim 128, --num-layers blocks, from a generator)
unless --tracker names a tracker file; the dataset is the motion-labelled dataset (--clips-per-class, 8x64x64).
Peak memory: the process RSS sampled every 2 ms during scoring, minus the RSS before it ("rss_peak_delta"), and
the library's own bookkeeping (largest raw capture of one clip, pooled rows held at once).

Usage: python bench/bench_scoring.py [--clips-per-class N] [--passes 0 1 3] [--threads K] [--out result.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402
from moaw_core.selection.layer_selection import ScoreConfig, TrackerSource, score_layers  # noqa: E402
from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset  # noqa: E402


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples the RSS in a thread; `.peak` is the largest value seen (bytes)."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())


def build_source(args):
    if args.tracker:
        return TrackerSource.from_file(args.tracker, args.steps)
    from moaw_core.tracking.tracker import MoawTracker, build_wan

    tracker = MoawTracker.from_generator(build_wan(num_layers=args.num_layers, seed=0), 32)
    return TrackerSource(tracker.eval(), args.steps or 1, init_noise="gaussian")  # untrained: no recorded start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracker", default=None, help="tracker file (default: random demo-sized tracker)")
    ap.add_argument("--codec", default="models/patch_pca_codec.safetensors")
    ap.add_argument("--num-layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--clips-per-class", type=int, default=4)
    ap.add_argument("--passes", type=int, nargs="+", default=[0, 1, 3], help="layers_per_pass values (0 = all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = PatchPCACodec.load(args.codec) if Path(args.codec).is_file() else None
    source = build_source(args)
    dcfg = MotionDatasetConfig(clips_per_class=args.clips_per_class)
    t0 = time.perf_counter()
    dataset = build_motion_dataset(dcfg)
    render_s = time.perf_counter() - t0
    if codec is None:  # no trained codec: fit one on the dataset (same shapes, same cost)
        codec = PatchPCACodec.fit(dataset.videos[:8], 16, 4)
    # warm-up (first-touch allocations, lazy imports) so the RSS deltas below measure the scoring itself
    score_layers(source, dataset.select("object"), codec.encode, config=ScoreConfig(layers_per_pass=0))
    results = []
    for per in args.passes:
        with PeakRSS() as mem:
            t1 = time.perf_counter()
            scores = score_layers(source, dataset, codec.encode, config=ScoreConfig(layers_per_pass=per))
            wall = time.perf_counter() - t1
        results.append({"layers_per_pass": per, "passes": scores.meta["passes"], "seconds": round(wall, 2),
                        "seconds_split": scores.meta["seconds"],
                        "rss_peak_delta_mb": round((mem.peak - mem.base) / 2**20, 1),
                        "max_capture_mb": round(scores.meta["memory"]["max_capture_bytes"] / 2**20, 2),
                        "max_pooled_mb": round(scores.meta["memory"]["max_pooled_bytes"] / 2**20, 2),
                        "top3": scores.top_k(3), "best": scores.rows[0]})
    result = {"bench": "scoring", "device": "cpu", "threads": args.threads, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "clips": len(dataset),
              "dataset": f"{dcfg.frames}x{dcfg.height}x{dcfg.width}", "layers": len(source.layers),
              "steps": len(source.sigmas) - 1, "render_seconds": round(render_s, 2), "results": results}
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
