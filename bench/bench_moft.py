"""Benchmark: MOFT-guided vs plain sampling, same model, steps, seed and noise, ratios in one run. Writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_moft.py            # -> bench/results/moft_cpu.json

Model: a random-init diffusers Wan with the bundled generator's shape (dim 256, 6 blocks; `--dim/--layers`),
latent 16 x 8 x 16 x 16 (`--latent`), 25 steps, the default window (steps 3-11), 2 repeats, feature block in the
middle (`--layer`, default block.2 = stops after 3 of 6 blocks). Both runs go through the same Euler loop
(`engine.transfer.generate`); the guided one is `moaw_core.moft.guided_sample`.

- time: wall clock, median of `--repeats` interleaved runs.
- peak memory: torch profiler on CPU (`profile_memory=True`): the running sum of bytes allocated by every op (its
  self allocations) and freed outside ops, in time order; its maximum is the peak of live tensor bytes at op
  granularity (transients inside one op are not seen). Model weights exist before the run and are not counted,
  so the ratio is of sampling working memory, with the weights added back in `peak_incl_weights`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.engine.transfer import generate  # noqa: E402
from moaw_core.moft import MoftGuidanceConfig, guided_sample, reference_from_model  # noqa: E402
from moaw_core.tracking.tracker import build_wan  # noqa: E402


def peak_bytes(fn) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events())
    cur = best = 0
    for _, b in events:
        cur += b
        best = max(best, cur)
    return int(best)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--layer", default="block.2")
    ap.add_argument("--latent", type=int, nargs=3, default=[8, 16, 16], metavar=("T", "H", "W"))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pooling", default="signed", help="the series' pooling (the bundled channel files use signed)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "moft_cpu.json"))
    a = ap.parse_args()
    torch.manual_seed(0)
    model = build_wan(dim=a.dim, num_layers=a.layers, ffn_dim=2 * a.dim, seed=0).eval()
    shape = (1, 16, *a.latent)
    src = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ref = reference_from_model(model, src, a.layer, pooling=a.pooling)
    cfg = MoftGuidanceConfig()  # the default window / repeats / weight
    runs = {"plain": lambda: generate(model, shape, seed=0, steps=a.steps),
            "guided": lambda: guided_sample(model, shape, ref, cfg, seed=0, steps=a.steps)}
    times = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(a.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    peaks = {name: peak_bytes(fn) for name, fn in runs.items()}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    t = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "model": f"random-init diffusers Wan dim {a.dim}, {a.layers} blocks", "latent": list(shape),
        "steps": a.steps, "feature_layer": a.layer, "pooling": a.pooling, "guided_steps": cfg.guided_steps(a.steps),
        "repeats_per_guided_step": cfg.repeats, "threads": torch.get_num_threads(),
        "time_s": {k: round(v, 3) for k, v in t.items()}, "time_runs_s": times,
        "time_ratio": round(t["guided"] / t["plain"], 3), "time_target": 3.0,
        "peak_working_bytes": peaks, "weights_bytes": weights,
        "peak_working_ratio": round(peaks["guided"] / max(peaks["plain"], 1), 3),
        "peak_incl_weights_ratio": round((peaks["guided"] + weights) / (peaks["plain"] + weights), 3),
        "memory_target": 1.5,
        "memory_method": "torch profiler (CPU, profile_memory): running sum of op self allocations and frees",
        "torch": torch.__version__,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("time_s", "time_ratio", "peak_working_bytes", "peak_working_ratio",
                                             "peak_incl_weights_ratio")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
