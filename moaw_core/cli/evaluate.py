"""CLI verb `eval`: score a Moaw tracker against baselines; writes JSON and a markdown table.

- Held-out synthetic clips (`moaw_core.data.synth`, a seed the trainer never uses): TAP-Vid metrics
  (`moaw_core.metrics.tracking.track_metrics`) on a grid of frame-0 points, and the dense mean position error
  over GT-visible entries of frames t >= 1, for the tracker vs zero motion, DIS (chained) and LK.
- Held-out 3-D scenes (`moaw_core.data.scenes3d`, `SCENES3D_EVAL`: 16 frames of 128 px, seed 1): the same
  metrics; the tracker runs on chained 8-frame windows at 64 px (`TrackerRun`, `predict_tracks_long`),
  optionally also as one pass over the whole clip (`tracker_whole`) or on 64-px tiles (`tracker_tiled`).
- MTBench cases (`moaw_core.data.real.load_mtbench_case`): the same metrics against CoTracker3 pseudo
  ground truth, 48 frames from its query frame at 128 px height.
- Seconds per clip of every method (after one untimed warm-up call) at `--threads` threads.
- MPI-Sintel pairs (`moaw_core.data.real.load_sintel_case`): EPE of flow frame_0002 -> frame_0003 over
  valid pixels. The tracker runs at its working resolution (--sintel-height, width by aspect) on the
  two frames; its frame-1 displacement is upsampled and rescaled to full resolution. DIS is given at
  full and at the tracker's resolution (same upsampling), and zero flow.
- Real clips without labels (`--real-clips`, e.g. the shared Tune-A-Video / PIPs clips; a validation set, not
  held out): flow frame t -> t + g at the clips' own resolution from `cv_trackers.pseudo_gt_flow` (DIS kept where
  forward-backward consistent and agreeing with Farneback), judged at --real-height; the tracker on the pair and
  on 3 frames (t, t + g, t + 2g), and on a frozen pair (frame t twice: any motion reported is invented).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tqdm import tqdm

from moaw_core.cli import CODEC, TRACKER
from moaw_core.cli.limits import require_ints
from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset
from moaw_core.data.synth import SynthConfig, SynthDataset
from moaw_core.engine.checkpoint import sampling_defaults
from moaw_core.metrics.tracking import flow_epe, track_metrics
from moaw_core.tracking import cv_trackers
from moaw_core.tracking.tracks import (DenseTracks, dense_to_sparse, grid_points, identity_tracks, sparse_from_grid,
                                       unpack_tracks)

SYNTH_METHODS = ("tracker", "zero", "dis", "lk")
ALL_METHODS = SYNTH_METHODS + ("tracker_whole", "tracker_tiled")
_TABLE_KEYS = ("mean_position_error", "dense_position_error", "delta_avg", "average_jaccard", "occlusion_accuracy")
# The held-out 3-D scenes: seed 1 (the trainer uses --data-seed 0 and 1000), 16 frames of 128 x 128, motion
# 2x the training range (over 12 scenes: median end-of-clip displacement 23.5 px, a third of the points
# hidden or out of frame at the end).
SCENES3D_EVAL = Scene3DConfig(frames=16, height=128, width=128, motion_scale=2.0)


@dataclass(frozen=True)
class TrackerRun:
    """How the tracker is run on a clip: windows of `window` frames every `stride` (None = window - 1) at
    `work_height` (`MoawTracker.predict_tracks_long`); steps: sampling steps (None = the file's);
    split_saturated: re-run windows near the encoding's displacement limit over fewer frames; flip_average:
    average each window with its mirror image's tracks (`MoawTracker.predict_tracks_batch`); refine: coarse-to-fine
    refinement with the tracker up to the clip's resolution, base_smooth / refine_smooth: its box filters
    (`MoawTracker.predict_tracks_long`)."""

    window: int = 8
    stride: int | None = None
    work_height: int | None = 64
    steps: int | None = None
    split_saturated: bool = False
    flip_average: bool = False
    refine: bool = True
    base_smooth: int = 11
    refine_smooth: int = 8


def dense_position_error(pred: DenseTracks, gt: DenseTracks) -> float:
    """Mean |xy_pred - xy_gt| (px) over GT-visible entries of frames t >= 1."""
    err = torch.linalg.vector_norm(pred.xy.float() - gt.xy.float(), dim=-1)[1:]
    vis = gt.visible[1:]
    return float(err[vis].mean()) if bool(vis.any()) else float("nan")


def _load_methods(tracker_path: str, codec_path: str, methods, run: TrackerRun):
    """Validated methods and the loaded tracker (None when no tracker method is asked for)."""
    from moaw_core.engine.bundle import load_tracker_codec

    unknown = set(methods) - set(ALL_METHODS)
    if unknown:
        raise ValueError(f"methods: expected a subset of {ALL_METHODS}, got {sorted(unknown)}")
    if not any(m.startswith("tracker") for m in methods):
        return None
    tracker, codec, tcodec, meta = load_tracker_codec(tracker_path, codec_path)
    return tracker, codec, tcodec, sampling_defaults(meta, run.steps)


def _track(method: str, video: torch.Tensor, pts: torch.Tensor, model, run: TrackerRun, seed: int = 0):
    """One method on one clip: (points [N,T,2], visible [N,T], dense DenseTracks or None)."""
    T, H, W = video.shape[:3]
    dense = None
    if method.startswith("tracker"):
        tracker, codec, tcodec, kw = model
        if method == "tracker":
            dense = tracker.predict_tracks_long(video, codec, tcodec, run.window, run.stride, run.work_height,
                                                split_saturated=run.split_saturated, seed=seed,
                                                flip_average=run.flip_average, refine=run.refine,
                                                base_smooth=run.base_smooth, refine_smooth=run.refine_smooth, **kw)
        elif method == "tracker_whole":
            dense = tracker.predict_tracks(video, codec, tcodec, seed=seed, **kw)
        else:
            dense = tracker.predict_tracks_tiled(video, codec, tcodec, seed=seed, **kw)
    elif method == "zero":
        dense = identity_tracks(T, H, W)
    elif method == "dis":
        dense = cv_trackers.track_dense_dis(video)
    else:
        p, v = cv_trackers.track_points_lk(video, pts)
        return np.asarray(p), np.asarray(v), None
    p, v = dense_to_sparse(dense, pts)
    return p.numpy(), v.numpy(), dense


def evaluate_synthetic(tracker_path: str, codec_path: str, num_clips: int = 32, seed: int = 1, grid: int = 16,
                       steps: int | None = None, cfg: SynthConfig | Scene3DConfig = SynthConfig(),
                       methods=SYNTH_METHODS, run: TrackerRun | None = None) -> dict:
    """Mean metrics per method over `num_clips` held-out clips: SynthDataset(cfg, num_clips, seed), or
    Scenes3DDataset for a Scene3DConfig. Query points: a grid x grid lattice of frame-0 points.

    Returns:
        {"methods": {method: {metric: mean}}, "num_clips", "seed", "grid", "steps", "frames", "size",
        "seconds_per_clip": {method: s}, "median_final_displacement": px}.
    """
    require_ints(1, num_clips=num_clips, grid=grid, steps=steps)
    run = run or TrackerRun(steps=steps)
    model = _load_methods(tracker_path, codec_path, methods, run)
    ds = Scenes3DDataset(cfg, num_clips, seed) if isinstance(cfg, Scene3DConfig) else SynthDataset(cfg, num_clips, seed)
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    secs = {m: 0.0 for m in methods}
    pts = grid_points(cfg.height, cfg.width, grid)
    final = []
    for i in tqdm(range(num_clips), desc=f"eval {type(cfg).__name__}", leave=False):
        video, packed = ds[i]
        gt = unpack_tracks(packed)
        gp, gv = sparse_from_grid(gt, grid)
        final.append(float(gt.displacement()[-1].norm(dim=-1).median()))
        for m in methods:
            if i == 0 and m.startswith("tracker"):
                _track(m, video, pts, model, run, i)  # warm-up, not timed
            t0 = time.perf_counter()
            p, v, dense = _track(m, video, pts, model, run, i)
            secs[m] += time.perf_counter() - t0
            row = track_metrics(p, v, gp.numpy(), gv.numpy())
            row["dense_position_error"] = dense_position_error(dense, gt) if dense is not None else float("nan")
            rows[m].append(row)
    out = {m: {k: _nanmean([r[k] for r in rs]) for k in rs[0]} for m, rs in rows.items()}
    return {"methods": out, "num_clips": num_clips, "seed": seed, "grid": grid, "steps": run.steps,
            "frames": cfg.frames, "size": [cfg.height, cfg.width], "run": dataclasses.asdict(run),
            "median_final_displacement": float(np.median(final)),
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
                    steps: int | None = None, flip_average: bool = False, refine: bool = True,
                    run: TrackerRun | None = None) -> dict:
    """EPE per case under `root` (folders containing gt/frame_0002.flo). Returns {case: {method: epe}}.
    flip_average: as `TrackerRun`. refine: also the tracker at full resolution, coarse at work_height and refined
    up to full resolution (`MoawTracker.predict_tracks_long`, with `run`'s base_smooth / refine_smooth): on the pair ("tracker_refined") and on frames 2-4
    ("tracker_refined_3f"; the flow is the tracks' frame 3: the tracker also reads motion from temporal context;
    docs/TRAINING.md gives its pair errors on validation scenes)."""
    from moaw_core.data.real import load_sintel_case
    from moaw_core.engine.bundle import load_tracker_codec

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"sintel root: no such folder {root}")
    cases = sorted(p.parent.parent for p in root.rglob("gt/frame_0002.flo"))
    if not cases:
        raise ValueError(f"sintel root: no case folders (with gt/frame_0002.flo) under {root}")
    tracker = load_tracker_codec(tracker_path, codec_path) if tracker_path else None
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
            dense = model.predict_tracks(small, codec, tcodec, flip_average=flip_average,
                                         **sampling_defaults(meta, steps))
            row[f"tracker_{h}px"] = flow_epe(_upsample_flow(dense.displacement()[1], H, W), case.flow, valid)["epe"]
            if refine:  # full resolution, refined; on the pair, and on frames 2-4 (the tracker's temporal context)
                for name, clip in (("tracker_refined", pair), ("tracker_refined_3f", case.frames[1:4])):
                    run = run or TrackerRun()
                    dense = model.predict_tracks_long(clip.contiguous(), codec, tcodec, work_height=h,
                                                      flip_average=flip_average, base_smooth=run.base_smooth,
                                                      refine_smooth=run.refine_smooth, **sampling_defaults(meta, steps))
                    row[name] = flow_epe(dense.displacement()[1], case.flow, valid)["epe"]
        results[str(case_dir.relative_to(root))] = row
    return results


REAL_STARTS, REAL_GAPS = (0, 16, 32), (1, 3)


def real_clip_files(root: str | Path) -> list[Path]:
    """Video files (`data.real.VIDEO_EXT`) and folders of frames directly under `root`, sorted."""
    from moaw_core.data.real import IMAGE_EXT, VIDEO_EXT

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"real clips: no such folder {root}")
    clips = sorted(p for p in root.iterdir() if (p.is_file() and p.suffix.lower() in VIDEO_EXT)
                   or (p.is_dir() and any(f.suffix.lower() in IMAGE_EXT for f in p.iterdir())))
    if not clips:
        raise ValueError(f"real clips: no videos ({', '.join(VIDEO_EXT)}) or folders of frames under {root}")
    return clips


def evaluate_real_clips(tracker_path: str | None, codec_path: str, root: str | Path, height: int = 256,
                        run: TrackerRun | None = None, starts=REAL_STARTS, gaps=REAL_GAPS) -> dict:
    """EPE against a pseudo ground truth on real clips (module docstring): for every clip under `root`, start frame t
    in `starts` and gap g in `gaps` (those that fit in the clip), flow t -> t + g from `cv_trackers.pseudo_gt_flow`
    at the clip's resolution (at most 4 x `height`), area-averaged to `height` (width by aspect, a multiple of 8),
    scored over pixels whose every source pixel is kept. Methods: zero, DIS at `height` on the pair, the tracker
    (`predict_tracks_long` with `run`) on the pair ("tracker_pair") and on frames t, t + g, t + 2g ("tracker_3f");
    "tracker_frozen": its mean |displacement| on frame t given twice (nothing moves; 0 is right).
    Returns {"clips": {name: {method: mean EPE, "valid": kept fraction, "motion": mean pseudo-GT |flow|}},
    "mean": the same averaged over clips, "height", "starts", "gaps"}."""
    from moaw_core.data.real import load_video
    from moaw_core.engine.bundle import load_tracker_codec

    require_ints(16, height=height)
    run = run or TrackerRun()
    clips = real_clip_files(root)
    model = load_tracker_codec(tracker_path, codec_path) if tracker_path else None
    need = max(starts) + 2 * max(gaps) + 1
    out = {}
    for path in tqdm(clips, desc="eval real clips", leave=False):
        video = load_video(path, max_frames=need)
        T, H, W = video.shape[:3]
        if T < 1 + 2 * min(gaps):
            raise ValueError(f"real clips: {path.name} has {T} frame(s); needs at least {1 + 2 * min(gaps)}")
        if H > 4 * height:  # the pseudo ground truth at most 4x the judged size
            video = load_video(path, max_frames=need, size=(4 * height, max(8, round(W * 4 * height / H))))
            H, W = video.shape[1:3]
        w = max(8, int(round(W * height / H / 8)) * 8)
        small = F.interpolate(video.permute(0, 3, 1, 2), size=(height, w), mode="area").permute(0, 2, 3, 1)
        small = small.clamp(0, 1).contiguous()
        rows = []
        for t0 in starts:
            for g in gaps:
                if t0 + 2 * g >= T:
                    continue
                flow, mask = cv_trackers.pseudo_gt_flow(video[t0].numpy(), video[t0 + g].numpy())
                gt = F.interpolate(torch.from_numpy(flow).permute(2, 0, 1)[None], size=(height, w), mode="area")[0]
                gt = gt.permute(1, 2, 0) * torch.tensor([w / W, height / H])
                valid = F.interpolate(torch.from_numpy(mask).float()[None, None], size=(height, w), mode="area")[0, 0]
                valid = valid > 0.999
                if not bool(valid.any()):
                    continue
                epe = lambda d: float(torch.linalg.vector_norm(d.float() - gt, dim=-1)[valid].mean())  # noqa: E731
                row = {"valid": float(valid.float().mean()), "motion": float(gt.norm(dim=-1)[valid].mean()),
                       "zero": epe(torch.zeros_like(gt)),
                       "dis": epe(torch.from_numpy(cv_trackers.dis_flow(small[t0].numpy(), small[t0 + g].numpy())))}
                if model is not None:
                    tracker, codec, tcodec, meta = model
                    kw = dict(window=run.window, stride=run.stride, work_height=run.work_height,
                              split_saturated=run.split_saturated, flip_average=run.flip_average, refine=run.refine,
                              base_smooth=run.base_smooth, refine_smooth=run.refine_smooth,
                              **sampling_defaults(meta, run.steps))
                    track = lambda idx: tracker.predict_tracks_long(small[idx].contiguous(), codec, tcodec, **kw)  # noqa: E731
                    row["tracker_pair"] = epe(track([t0, t0 + g]).displacement()[1])
                    row["tracker_3f"] = epe(track([t0, t0 + g, t0 + 2 * g]).displacement()[1])
                    row["tracker_frozen"] = float(track([t0, t0]).displacement()[1].norm(dim=-1).mean())
                rows.append(row)
        if rows:
            out[path.stem] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    if not out:
        raise ValueError(f"real clips: no clip under {root} is long enough for starts {starts} and gaps {gaps}")
    mean = {k: float(np.mean([r[k] for r in out.values()])) for k in next(iter(out.values()))}
    return {"clips": out, "mean": mean, "height": height, "starts": list(starts), "gaps": list(gaps)}


def evaluate_mtbench(tracker_path: str, codec_path: str, root: str | Path, frames: int = 48, height: int = 128,
                     methods=SYNTH_METHODS, run: TrackerRun | None = None) -> dict:
    """TAP-Vid metrics against the MTBench cases' CoTracker3 pseudo ground truth (queried at frame 1).

    The clip is `frames` frames from the query frame on, resized to `height` (width by aspect, a multiple of
    8); the query points are every track visible at the query frame. Returns {case: {method: metrics,
    "seconds": {method: s}}, "frames", "size"}.
    """
    from moaw_core.data.mtbench import find_cases
    from moaw_core.data.real import load_mtbench_case

    run = run or TrackerRun()
    model = _load_methods(tracker_path, codec_path, methods, run)
    out = {}
    for case_dir in find_cases(root):
        case = load_mtbench_case(case_dir)
        q = case.query_frame
        video = case.video[q:q + frames]
        T, H, W = video.shape[:3]
        w = max(8, round(W * height / H / 8) * 8)
        small = F.interpolate(video.permute(0, 3, 1, 2), size=(height, w), mode="area").permute(0, 2, 3, 1)
        small = small.clamp(0, 1).contiguous()
        scale = torch.tensor([w / W, height / H])
        gp = (case.points[:, q:q + T] + 0.5) * scale - 0.5  # pixel centres stay pixel centres
        gv = case.visible[:, q:q + T]
        keep = gv[:, 0] & (gp[:, 0] >= 0).all(-1) & (gp[:, 0, 0] <= w - 1) & (gp[:, 0, 1] <= height - 1)
        gp, gv = gp[keep].numpy(), gv[keep].numpy()
        row, secs = {}, {}
        for m in methods:
            if m.startswith("tracker"):
                _track(m, small, torch.from_numpy(gp[:, 0]), model, run)  # warm-up, not timed
            t0 = time.perf_counter()
            p, v, _ = _track(m, small, torch.from_numpy(gp[:, 0]), model, run)
            secs[m] = time.perf_counter() - t0
            row[m] = track_metrics(p, v, gp, gv)
        out[case.name] = {**row, "seconds": secs, "frames": T, "size": [height, w], "points": int(keep.sum())}
    return out


def _method_table(title: str, methods: dict, seconds: dict) -> list[str]:
    lines = [title, "", "| method | " + " | ".join(_TABLE_KEYS) + " | s/clip |", "|---" * (len(_TABLE_KEYS) + 2) + "|"]
    for m, r in methods.items():
        lines.append(f"| {m} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in _TABLE_KEYS)
                     + f" | {seconds[m]:.3f} |")
    return lines + [""]


def markdown(synthetic: dict | None, sintel: dict | None, scenes3d: dict | None = None,
             mtbench: dict | None = None, real: dict | None = None) -> str:
    lines = []
    for name, res in (("synthetic clips", synthetic), ("3-D scenes", scenes3d)):
        if res:
            lines += _method_table(
                f"Held-out {name}: {res['num_clips']} (seed {res['seed']}), {res.get('frames')} frames of "
                f"{res.get('size')}, {res['grid']}x{res['grid']} query grid, median final displacement "
                f"{res.get('median_final_displacement', float('nan')):.1f} px.", res["methods"], res["seconds_per_clip"])
    for case, res in (mtbench or {}).items():
        methods = {m: r for m, r in res.items() if isinstance(r, dict) and m != "seconds"}
        lines += _method_table(f"MTBench {case} ({res['frames']} frames from the query frame, {res['size']}, "
                               f"{res['points']} CoTracker3 pseudo-GT tracks):", methods, res["seconds"])
    if sintel:
        cols = list(next(iter(sintel.values())))
        lines += ["MPI-Sintel EPE (px, frame_0002 -> 0003, valid pixels):", "",
                  "| case | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(f"{r[k]:.2f}" for k in cols) + " |" for c, r in sintel.items()]
    if real:
        cols = list(real["mean"])
        lines += ["", f"Real clips, pseudo ground truth (consistent DIS/Farneback at the clip's resolution), EPE px at "
                  f"{real['height']} px height, starts {real['starts']}, gaps {real['gaps']} (valid: kept fraction; "
                  "motion: mean pseudo-GT flow; tracker_frozen: motion reported on a frame given twice):", "",
                  "| clip | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {c} | " + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in cols) + " |"
                  for c, r in {**real["clips"], "**mean**": real["mean"]}.items()]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracker", default=str(TRACKER), help="tracker file (default: the bundled one)")
    parser.add_argument("--codec", default=str(CODEC), help="codec file (default: the bundled one)")
    parser.add_argument("--num-clips", type=int, default=32, help="held-out 2-D synthetic clips (0 = skip)")
    parser.add_argument("--seed", type=int, default=1, help="held-out seed (training uses 0 and 1000)")
    parser.add_argument("--scenes3d", type=int, default=12,
                        help="held-out 3-D scenes (16 frames, 128 px, seed --seed; 0 = skip)")
    parser.add_argument("--mtbench", default="", help="MTBench cases, e.g. ../shared/data/mtbench ('' = skip)")
    parser.add_argument("--mtbench-frames", type=int, default=48)
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=list(SYNTH_METHODS), choices=ALL_METHODS)
    parser.add_argument("--window", type=int, default=8, help="tracker window (frames per call)")
    parser.add_argument("--stride", type=int, default=None, help="frames between window anchors (default window-1)")
    parser.add_argument("--work-height", type=int, default=64, help="the tracker's working height (0 = clip's)")
    parser.add_argument("--split-saturated", action=argparse.BooleanOptionalAction, default=False,
                        help="re-run windows whose motion nears the tracker's max_disp over fewer frames")
    parser.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=False,
                        help="average the tracker's tracks with those of the mirrored clip (2x the work)")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                        help="refine the tracks coarse to fine with the tracker up to the clip's resolution")
    parser.add_argument("--base-smooth", type=int, default=11,
                        help="box filter (px at the work height) on the base windows' motion before refining; 0 = off")
    parser.add_argument("--refine-smooth", type=int, default=8,
                        help="box filter (px) on each refinement level's stitched residual (8 = a token); 0 = off")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (timings are per clip)")
    parser.add_argument("--sintel", default="", help="Sintel root, e.g. ../shared/data/sintel ('' = skip)")
    parser.add_argument("--sintel-height", type=int, default=64)
    parser.add_argument("--real-clips", default="",
                        help="folder of real videos without labels, e.g. ../shared/data/clips: pseudo-GT EPE ('' = skip)")
    parser.add_argument("--real-height", type=int, default=256, help="height the real clips are judged at")
    parser.add_argument("--out", default="out/eval", help="writes <out>.json and <out>.md")


def main(args: argparse.Namespace) -> int:
    import cv2

    require_ints(0, num_clips=args.num_clips, scenes3d=args.scenes3d, work_height=args.work_height,
                 base_smooth=args.base_smooth, refine_smooth=args.refine_smooth)
    require_ints(1, grid=args.grid, steps=args.steps, stride=args.stride, threads=args.threads)
    require_ints(2, window=args.window, mtbench_frames=args.mtbench_frames)
    require_ints(16, sintel_height=args.sintel_height, real_height=args.real_height)
    if args.num_clips == 0 and args.scenes3d == 0 and not args.mtbench and not args.sintel and not args.real_clips:
        raise ValueError("num-clips/scenes3d: both 0 and no --mtbench, --sintel or --real-clips folder: nothing to "
                         "evaluate")
    if args.real_clips:
        real_clip_files(args.real_clips)  # a bad folder fails here, before anything runs
    for name in ("tracker", "codec"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    run = TrackerRun(args.window, args.stride, args.work_height or None, args.steps, args.split_saturated,
                     args.flip_average, args.refine, args.base_smooth, args.refine_smooth)
    methods = tuple(args.methods)
    synthetic = evaluate_synthetic(args.tracker, args.codec, args.num_clips, args.seed, args.grid,
                                   methods=methods, run=run) if args.num_clips > 0 else None
    scenes3d = evaluate_synthetic(args.tracker, args.codec, args.scenes3d, args.seed, args.grid, cfg=SCENES3D_EVAL,
                                  methods=methods, run=run) if args.scenes3d > 0 else None
    mtbench = evaluate_mtbench(args.tracker, args.codec, args.mtbench, args.mtbench_frames, methods=methods,
                               run=run) if args.mtbench else None
    sintel = evaluate_sintel(args.tracker if "tracker" in args.methods else None, args.codec, args.sintel,
                             args.sintel_height, args.steps, args.flip_average, args.refine, run) if args.sintel else None
    real = evaluate_real_clips(args.tracker if "tracker" in args.methods else None, args.codec, args.real_clips,
                               args.real_height, run) if args.real_clips else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"tracker": args.tracker, "synthetic": synthetic,
                                                    "scenes3d": scenes3d, "mtbench": mtbench, "sintel": sintel,
                                                    "real_clips": real, "threads": args.threads, "run": dataclasses.asdict(run)}, indent=1))
    table = markdown(synthetic, sintel, scenes3d, mtbench, real)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0
