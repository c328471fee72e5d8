"""CLI verb `eval`: score a Moaw tracker against baselines; writes JSON and a markdown table.

- Held-out synthetic clips (`moaw_core.data.synth`, a seed the trainer never uses): TAP-Vid metrics
  (`moaw_core.metrics.motion.track_metrics`) on a grid of frame-0 points, and the dense mean position error
  over GT-visible entries of frames t >= 1, for the tracker vs zero motion, DIS (chained) and LK.
- MPI-Sintel pairs (`moaw_core.data.real.load_sintel_case`): EPE of flow frame_0002 -> frame_0003 over
  valid pixels. The tracker runs at its working resolution (--sintel-height, width by aspect) on the
  two frames; its frame-1 displacement is upsampled and rescaled to full resolution. DIS is given at
  full and at the tracker's resolution (same upsampling), and zero flow.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moaw_core.cli import CODEC, TRACKER
from moaw_core.cli.limits import require_ints
from moaw_core.tracking import cv_trackers
from moaw_core.engine.checkpoint import sampling_defaults
from moaw_core.metrics.motion import flow_epe, track_metrics
from moaw_core.data.synth import SynthConfig, SynthDataset
from moaw_core.tracking.tracks import DenseTracks, grid_points, sparse_from_grid, unpack_tracks

SYNTH_METHODS = ("tracker", "zero", "dis", "lk")
_TABLE_KEYS = ("mean_position_error", "dense_position_error", "delta_avg", "average_jaccard", "occlusion_accuracy")


def dense_position_error(pred: DenseTracks, gt: DenseTracks) -> float:
    """Mean |xy_pred - xy_gt| (px) over GT-visible entries of frames t >= 1."""
    err = torch.linalg.vector_norm(pred.xy.float() - gt.xy.float(), dim=-1)[1:]
    vis = gt.visible[1:]
    return float(err[vis].mean()) if bool(vis.any()) else float("nan")


def evaluate_synthetic(tracker_path: str, codec_path: str, num_clips: int = 32, seed: int = 1, grid: int = 16,
                       steps: int | None = None, cfg: SynthConfig = SynthConfig(),
                       methods=SYNTH_METHODS) -> dict:
    """Mean metrics per method over `num_clips` clips of SynthDataset(cfg, num_clips, seed).

    Returns:
        {"methods": {method: {metric: mean}}, "num_clips", "grid", "seconds_per_clip": {method: s}}.
    """
    from moaw_core.cli.predict import load_demo

    require_ints(1, num_clips=num_clips, grid=grid, steps=steps)
    unknown = set(methods) - set(SYNTH_METHODS)
    if unknown:
        raise ValueError(f"methods: expected a subset of {SYNTH_METHODS}, got {sorted(unknown)}")
    tracker = codec = tcodec = None
    kw = {"steps": steps or 1}
    if "tracker" in methods:
        tracker, codec, tcodec, meta = load_demo(tracker_path, codec_path)
        kw = sampling_defaults(meta, steps)
    ds = SynthDataset(cfg, num_clips, seed)
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    secs = {m: 0.0 for m in methods}
    pts = grid_points(cfg.height, cfg.width, grid)
    for i in range(num_clips):
        video, packed = ds[i]
        gt = unpack_tracks(packed)
        gp, gv = sparse_from_grid(gt, grid)
        for m in methods:
            t0 = time.perf_counter()
            dense = None
            if m == "tracker":
                dense = tracker.predict_tracks(video, codec, tcodec, seed=i, **kw)
                p, v = sparse_from_grid(dense, grid)
            elif m == "zero":
                p, v = cv_trackers.zero_motion_points(pts, cfg.frames)
                dense = DenseTracks(gt.xy[:1].expand_as(gt.xy).clone(), torch.ones_like(gt.visible))
            elif m == "dis":
                dense = cv_trackers.track_dense_dis(video)
                p, v = sparse_from_grid(dense, grid)
            else:
                p, v = cv_trackers.track_points_lk(video, pts)
            secs[m] += time.perf_counter() - t0
            row = track_metrics(np.asarray(p), np.asarray(v), gp.numpy(), gv.numpy())
            row["dense_position_error"] = dense_position_error(dense, gt) if dense is not None else float("nan")
            rows[m].append(row)
    out = {m: {k: _nanmean([r[k] for r in rs]) for k in rs[0]} for m, rs in rows.items()}
    return {"methods": out, "num_clips": num_clips, "seed": seed, "grid": grid, "steps": kw["steps"],
            "seconds_per_clip": {m: s / num_clips for m, s in secs.items()}}


def _nanmean(values: list[float]) -> float:
    """Mean over the finite values (a metric can be undefined for a clip, e.g. LK has no dense output)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _upsample_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[h,w,2] -> [H,W,2], displacements rescaled to the new pixel size."""
    h, w = flow.shape[:2]
    up = F.interpolate(flow.permute(2, 0, 1)[None].float(), size=(height, width), mode="bilinear",
                       align_corners=False)[0].permute(1, 2, 0)
    return up * torch.tensor([width / w, height / h])


def evaluate_sintel(tracker_path: str | None, codec_path: str, root: str | Path, work_height: int = 64,
                    steps: int | None = None) -> dict:
    """EPE per case under `root` (folders containing gt/frame_0002.flo). Returns {case: {method: epe}}."""
    from moaw_core.data.real import load_sintel_case
    from moaw_core.cli.predict import load_demo

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"sintel root: no such folder {root}")
    cases = sorted(p.parent.parent for p in root.rglob("gt/frame_0002.flo"))
    if not cases:
        raise ValueError(f"sintel root: no case folders (with gt/frame_0002.flo) under {root}")
    tracker = load_demo(tracker_path, codec_path) if tracker_path else None
    results = {}
    for case_dir in cases:
        case = load_sintel_case(case_dir)
        pair = case.frames[1:3]
        H, W = pair.shape[1:3]
        valid = ~case.invalid
        h = work_height
        w = max(8, int(round(W * h / H / 8)) * 8)
        small = F.interpolate(pair.permute(0, 3, 1, 2), size=(h, w), mode="area").permute(0, 2, 3, 1).contiguous()
        row = {"zero": flow_epe(torch.zeros_like(case.flow), case.flow, valid)["epe"],
               "dis_full": flow_epe(cv_trackers.dis_flow(pair[0].numpy(), pair[1].numpy()), case.flow, valid)["epe"],
               f"dis_{h}px": flow_epe(_upsample_flow(torch.from_numpy(
                   cv_trackers.dis_flow(small[0].numpy(), small[1].numpy())), H, W), case.flow, valid)["epe"]}
        if tracker is not None:
            model, codec, tcodec, meta = tracker
            dense = model.predict_tracks(small, codec, tcodec, **sampling_defaults(meta, steps))
            row[f"tracker_{h}px"] = flow_epe(_upsample_flow(dense.displacement()[1], H, W), case.flow, valid)["epe"]
        results[str(case_dir.relative_to(root))] = row
    return results


def markdown(synthetic: dict | None, sintel: dict | None) -> str:
    lines = []
    if synthetic:
        lines += [f"Held-out synthetic clips: {synthetic['num_clips']} (seed {synthetic['seed']}), "
                  f"{synthetic['grid']}x{synthetic['grid']} query grid, tracker steps {synthetic['steps']}.", "",
                  "| method | " + " | ".join(_TABLE_KEYS) + " | s/clip |", "|---" * (len(_TABLE_KEYS) + 2) + "|"]
        for m, r in synthetic["methods"].items():
            lines.append(f"| {m} | " + " | ".join(f"{r[k]:.3f}" for k in _TABLE_KEYS)
                         + f" | {synthetic['seconds_per_clip'][m]:.3f} |")
        lines.append("")
    if sintel:
        cols = list(next(iter(sintel.values())))
        lines += ["MPI-Sintel EPE (px, frame_0002 -> 0003, valid pixels):", "",
                  "| case | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(f"{r[k]:.2f}" for k in cols) + " |" for c, r in sintel.items()]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracker", default=str(TRACKER), help="tracker file (default: the bundled one)")
    parser.add_argument("--codec", default=str(CODEC), help="codec file (default: the bundled one)")
    parser.add_argument("--num-clips", type=int, default=32, help="synthetic clips (0 = Sintel only)")
    parser.add_argument("--seed", type=int, default=1, help="held-out synthetic seed (training uses 0)")
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=list(SYNTH_METHODS), choices=SYNTH_METHODS)
    parser.add_argument("--sintel", default="", help="Sintel root, e.g. ../shared/data/sintel ('' = skip)")
    parser.add_argument("--sintel-height", type=int, default=64)
    parser.add_argument("--out", default="out/eval", help="writes <out>.json and <out>.md")


def main(args: argparse.Namespace) -> int:
    require_ints(0, num_clips=args.num_clips)
    require_ints(1, grid=args.grid, steps=args.steps)
    require_ints(16, sintel_height=args.sintel_height)
    if args.num_clips == 0 and not args.sintel:
        raise ValueError("num-clips: 0 skips the synthetic clips, and no --sintel folder is given: nothing to evaluate")
    for name in ("tracker", "codec"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file {getattr(args, name)}")
    synthetic = evaluate_synthetic(args.tracker, args.codec, args.num_clips, args.seed, args.grid, args.steps,
                                   methods=tuple(args.methods)) if args.num_clips > 0 else None
    sintel = evaluate_sintel(args.tracker if "tracker" in args.methods else None, args.codec, args.sintel,
                             args.sintel_height, args.steps) if args.sintel else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"tracker": args.tracker, "synthetic": synthetic,
                                                    "sintel": sintel}, indent=1))
    table = markdown(synthetic, sintel)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0
