"""Benchmark of DeT (diffusers path, `moaw_core.det`): training cost per step and apply-time sampling overhead.
Writes JSON (default bench/results/det_cpu.json).

    .venv/bin/python bench/bench_det.py --wide               # tiny Wan generator (demo latent 8x16x16) + Wan 1.3B width, CPU
    .venv/bin/python bench/bench_det.py --wan-1.3b --device cuda --latent 9 30 52 --out bench/results/det_gpu.json

Measured in one run, interleaved, median of `--repeats`. On CPU the timings are this process's CPU time
(`time.process_time`, all threads): the shared machine's other jobs stretch wall time by 1-5x from one call to the
next, CPU time much less; wall times are recorded too. On CUDA: wall time after synchronize.
- one DeT training step (noise draw, forward with adapters in every block, loss incl. tracking term, backward,
  grad clip, AdamW step) vs one plain forward+backward of the same frozen model (gradient to the input only);
- peak memory of each (CUDA: max_memory_allocated; CPU: a fresh child process per mode, model loaded, malloc
  trimmed, the kernel's RSS high-water mark reset (/proc/self/clear_refs), then VmHWM - VmRSS over the step);
- sampling with adapters in the first 35 % of blocks vs plain sampling (same noise, steps); target <= 1.05x;
- with --wide, the same sampling ratio in the same run on a Wan 2.1 1.3B-shaped model (width 1536, FFN 8960, 30
  blocks, random weights) with a small latent (default 4x16x16): the adapter's cost is ~2 K C hidden per token
  against ~(6 C^2 + 2 C ffn + attention) for the block, so the tiny width (C 256, hidden 128) is its worst case.
CPU runs use one thread by default (--threads): with two threads on a shared machine OpenMP's spin-waiting is
counted as CPU time and stretched the old figures (1.28x apply overhead measured with 2 threads, ~1.06x with 1).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _model(args, wide: bool = False):
    if args.wan_13b or wide:
        from moaw_core.tracking.tracker import build_wan
        m = build_wan(dim=1536, num_layers=args.wide_layers if wide else 30, ffn_dim=8960, seed=0)
    else:
        from moaw_core.engine.checkpoint import load_backbone
        m = load_backbone(ROOT / "models/generators/moaw_tiny_wan_generator.safetensors", "generator")[0]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    m = m.to(args.device) if dtype == torch.float32 else m.to(args.device, dtype)
    return m.eval().requires_grad_(False)


def _setup(args):
    from moaw_core.det.pipeline import adapters_for, make_denoise
    from moaw_core.det.tracks import latent_tracks
    from moaw_core.det.train import DeTTrainConfig

    m = _model(args)
    p = next(m.parameters())
    t, h, w = args.latent
    x0 = torch.randn(1, m.config.in_channels, t, h, w, generator=torch.Generator().manual_seed(0)).to(p.device, p.dtype)
    a = adapters_for(m).to(p.device)
    n = 100
    pts = torch.rand(n, t, 2) * torch.tensor([w * 8.0, h * 8.0])
    tracks = latent_tracks(pts, torch.ones(n, t, dtype=torch.bool), (h * 8, w * 8), (t, h, w))
    cfg = DeTTrainConfig(steps=1, lr=1e-5, track_max_t=1.0)  # tracking term on in every timed step (worst case)
    return m, x0, a, tracks, cfg, make_denoise(m, x0)


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def plain_step(m, x0, denoise):
    x = x0.clone().requires_grad_(True)
    out = denoise(x, torch.full((1,), 0.5, device=x.device, dtype=x.dtype))
    out.float().pow(2).mean().backward()


def det_step(m, x0, a, tracks, cfg, denoise, state_box):
    from moaw_core.det.placement import attach_det
    from moaw_core.det.train import DeTTrainConfig, train_adapters

    state_box[0].step = 0
    with attach_det(m, a):
        state_box[0] = train_adapters(denoise, x0, a, DeTTrainConfig(**{**cfg.__dict__, "steps": 1}), tracks,
                                      state=state_box[0])


def _timed(fn, device):
    """(seconds used: CPU time on CPU, wall time on CUDA; wall seconds)."""
    _sync(device)
    t, c = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    wall = time.perf_counter() - t
    return (wall if str(device).startswith("cuda") else time.process_time() - c), wall


def memory_child(args, mode: str) -> float:
    """Run one step of `mode` in a fresh process; returns peak RSS growth over the loaded model (MiB)."""
    cmd = [sys.executable, __file__, "--child", mode, "--device", args.device, "--dtype", args.dtype,
           "--latent", *map(str, args.latent)] + (["--wan-1.3b"] if args.wan_13b else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(args) -> None:
    import ctypes
    import gc

    from moaw_core.det.train import DeTTrainState

    m, x0, a, tracks, cfg, denoise = _setup(args)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)        # loading's freed buffers go back to the OS
    Path("/proc/self/clear_refs").write_text("5")  # reset the RSS high-water mark
    base = _status_kib("VmRSS")
    if args.child == "plain":
        plain_step(m, x0, denoise)
    else:
        det_step(m, x0, a, tracks, cfg, denoise, [DeTTrainState()])
    print((_status_kib("VmHWM") - base) / 1024.0)


def apply_ratio(m, shape, args, repeats: int) -> dict:
    """Sampling plain vs with adapters (random, non-zero output convs) in the first 35 % of blocks, interleaved."""
    from moaw_core.det.pipeline import adapters_for, generate_det

    p = next(m.parameters())
    a = adapters_for(m).to(p.device, p.dtype)
    with torch.no_grad():
        for mod in a.blocks.values():
            mod.conv_out.weight.normal_(std=0.01)
    fns = {"sample_plain": lambda: generate_det(m, None, shape, seed=0, steps=args.steps),
           "sample_det": lambda: generate_det(m, a, shape, seed=0, steps=args.steps, fraction=0.35)}
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_timed(fn, args.device)[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    from moaw_core.det.adapter import first_fraction
    return {"width": a.width, "blocks": len(a.layer_names), "blocks_with_adapter": len(first_fraction(a.layer_names)),
            "latent": [int(v) for v in shape], "seconds_median": {k: round(v, 4) for k, v in med.items()},
            "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
            "apply_sampling_over_plain": round(med["sample_det"] / med["sample_plain"], 3)}


def run(args) -> dict:
    from moaw_core.det.pipeline import generate_det
    from moaw_core.det.train import DeTTrainState

    m, x0, a, tracks, cfg, denoise = _setup(args)
    with torch.no_grad():
        for mod in a.blocks.values():  # trained-like weights (zero output conv would be skipped by nothing anyway)
            mod.conv_out.weight.normal_(std=0.01)
    box = [DeTTrainState()]
    shape = tuple(x0.shape)
    fns = {"plain_fwd_bwd": lambda: plain_step(m, x0, denoise),
           "det_train_step": lambda: det_step(m, x0, a, tracks, cfg, denoise, box),
           "sample_plain": lambda: generate_det(m, None, shape, seed=0, steps=args.steps),
           "sample_det": lambda: generate_det(m, a, shape, seed=0, steps=args.steps, fraction=0.35)}
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    walls = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k, fn in fns.items():
            used, wall = _timed(fn, args.device)
            times[k].append(used)
            walls[k].append(wall)
    med = {k: statistics.median(v) for k, v in times.items()}
    if str(args.device).startswith("cuda"):
        mem = {}
        for k in ("plain_fwd_bwd", "det_train_step"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fns[k]()
            mem[k] = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        mem = {"plain_fwd_bwd": memory_child(args, "plain"), "det_train_step": memory_child(args, "det")}
    n_params, n_blocks = sum(p.numel() for p in a.parameters()), len(a.layer_names)
    wide = None
    if args.wide:
        del m, a, fns, denoise
        mw = _model(args, wide=True)
        wide = {"model": f"Wan 2.1 1.3B width (1536, FFN 8960, {args.wide_layers} blocks, random weights)",
                **apply_ratio(mw, (1, mw.config.in_channels, *args.wide_latent), args, args.wide_repeats)}
    return {
        "model": "Wan 2.1 1.3B shape (random)" if args.wan_13b else "bundled tiny Wan generator",
        "device": args.device, "dtype": args.dtype, "latent": [int(v) for v in shape],
        "adapter_params": n_params, "blocks": n_blocks, "repeats": args.repeats,
        "sampling_steps": args.steps, "torch_threads": torch.get_num_threads(),
        "timing": "cuda wall" if str(args.device).startswith("cuda") else "cpu process time",
        "seconds_median": {k: round(v, 4) for k, v in med.items()},
        "seconds_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "wall_seconds_all": {k: [round(x, 4) for x in v] for k, v in walls.items()},
        "train_step_over_plain_fwd_bwd": round(med["det_train_step"] / med["plain_fwd_bwd"], 3),
        "peak_memory_mib": {k: round(v, 1) for k, v in mem.items()},
        "train_memory_over_plain": round(mem["det_train_step"] / max(mem["plain_fwd_bwd"], 1e-6), 3),
        "apply_sampling_over_plain": round(med["sample_det"] / med["sample_plain"], 3),
        "apply_target": 1.05,
        "wide": wide,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--latent", type=int, nargs=3, default=(8, 16, 16), metavar=("T", "H", "W"))
    p.add_argument("--steps", type=int, default=2, help="sampling steps of the apply measurement")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--wan-1.3b", dest="wan_13b", action="store_true")
    p.add_argument("--wide", action="store_true", help="also the apply ratio at Wan 1.3B width (same run)")
    p.add_argument("--wide-layers", type=int, default=30)
    p.add_argument("--wide-latent", type=int, nargs=3, default=(4, 16, 16), metavar=("T", "H", "W"))
    p.add_argument("--wide-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU (see the docstring)")
    p.add_argument("--out", default=str(ROOT / "bench/results/det_cpu.json"))
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return 0
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
