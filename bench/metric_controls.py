"""Control table and speed of the transfer scorer (`moaw_core.metrics.score_transfer`). Prints markdown, writes JSON.

    .venv/bin/python bench/metric_controls.py [--clips ../shared/data/clips] [--out bench/results/metric_controls.json]

Per source clip (3 synthetic clips always, the real clips in --clips when present: 8 frames at 64 x 64, a
per-clip frame stride so they move 0.5-3 px per frame), scores against the source: itself, the same motion
in other colours (`recolour`), the frozen first frame, the reversed clip, uniform noise and another clip's
motion. The thresholds that tests/unit/test_metric_controls.py enforces are in its docstring. Also times
one `score_transfer` call (source prepared once) on 8 x 64 x 64 videos.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import moaw_core.metrics as M  # noqa: E402
from moaw_core.data.sources import synthetic_source  # noqa: E402

FIGS = ("motion_fidelity", "trajectory_shape", "field_agreement_moving", "field_agreement_frame",
        "temporal_consistency")
SHORT = ("MF", "TS", "FA moving", "FA frame", "TC")
REAL_STRIDES = {"pips2_camel": 24, "tav_car-turn": 4, "tav_man-skiing": 2, "tav_man-surfing": 2,
                "tav_rabbit-watermelon": 12}
SYNTH = (("object_right", 100_000, "static", "right", "down"), ("object_down", 100_001, "static", "down", "left"),
         ("pan_left", 100_002, "pan_left", "none", "tilt_up"))


def _cases(clips: Path) -> dict:
    out = {}
    for name, seed, camera, objects, other in SYNTH:
        clip = synthetic_source(seed, camera=camera, objects=objects)
        diff = (synthetic_source(seed, camera=other, objects="none") if objects == "none"
                else synthetic_source(seed, camera=camera, objects=other))
        mask = (clip.layer_index[0] > 0).numpy() if objects != "none" else None
        out[f"synthetic {name}"] = (clip.video.numpy(), mask, diff.video.numpy())
    if all((clips / f"{n}.mp4").is_file() for n in REAL_STRIDES):
        from moaw_core.data.real import load_video

        vids = {n: load_video(clips / f"{n}.mp4", max_frames=8 * s, size=(64, 64)).numpy()[::s]
                for n, s in REAL_STRIDES.items()}
        names = sorted(vids)
        for i, n in enumerate(names):
            out[f"real {n}"] = (vids[n], None, vids[names[(i + 1) % len(names)]])
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default=str(ROOT.parent / "shared" / "data" / "clips"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "metric_controls.json"))
    args = ap.parse_args()
    results, times = {}, []
    for case, (video, mask, different) in _cases(Path(args.clips)).items():
        src = M.prepare_source(video, mask)
        videos = {"self": video, "recolour": M.recolour(video), **M.control_videos(video), "different": different}
        results[case] = {"query_region": src.query_region, "num_points": len(src.queries), "scores": {}}
        for k, v in videos.items():
            t0 = time.perf_counter()
            s = M.score_transfer(src, v)
            times.append(time.perf_counter() - t0)
            results[case]["scores"][k] = {f: s[f] for f in FIGS}
    report = {"results": results, "score_transfer_s": {"median": statistics.median(times), "max": max(times),
                                                       "calls": len(times)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("| clip | video | " + " | ".join(SHORT) + " |\n|---|---|" + "---|" * len(SHORT))
    for case, r in results.items():
        for k, s in r["scores"].items():
            print(f"| {case} | {k} | " + " | ".join("–" if np.isnan(s[f]) else f"{s[f]:.2f}" for f in FIGS) + " |")
    print(f"\nscore_transfer: median {report['score_transfer_s']['median'] * 1e3:.0f} ms per call "
          f"({len(times)} calls); JSON in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
