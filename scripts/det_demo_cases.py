"""DeT on the demo's image-to-video cases: per source video, train adapters (first-frame conditioning), animate the
case's image plain and with DeT (same seeds, same noise), score both against the source with the fixed metrics
(`moaw_core.metrics.score_transfer`). Tuning and reporting use disjoint clips.

    # choose settings on TUNING clips (clip seeds 200000+, generation seeds 10 11; never the reported ones)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/det_demo_cases.py tune --out out/det_tune.jsonl
    # measure the chosen defaults (<generator>.det.json) on the HELD-OUT cases (clip seeds 100000+, seeds 0-4)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/det_demo_cases.py eval --control --out bench/results/det_demo_cases.json

Tuning trains once per (lr, track weight) for the largest step count and evaluates snapshots at the smaller step
counts; the kept-block fraction is a sampling setting (no retraining). Each line of the tune output is one setting:
paired motion-fidelity gain (DeT - plain) mean / std / wins, per kind, frame-0 PSNR, HF energy ratio, training s.
`eval --control` also trains on each source played backwards and scores that against the forward source (a control
that must lose to plain if DeT transfers the source's motion rather than just adding motion). `eval` writes
`<out stem>_frames/<case>.png` (rows: source, plain, DeT, DeT reversed; first seed) to look at; `colour` reads them
back and prints how far each row's colours move from the given image towards the source's (appearance leak).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.cli.demo import DemoConfig  # noqa: E402
from moaw_core.data.demo_cases import CASES, build_case  # noqa: E402
from moaw_core.det import i2v as det_i2v  # noqa: E402
from moaw_core.det.pipeline import adapters_for  # noqa: E402
from moaw_core.engine import i2v  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.metrics import frame0_fidelity, hf_energy_ratio, prepare_source, score_transfer  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402

GENERATOR = ROOT / "models" / "generators" / "moaw_tiny_wan_i2v.safetensors"
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"
_D = DemoConfig()
SAMPLING = {"steps": _D.gen_steps, "denoise": _D.denoise, "shift": _D.shift, "keep_first_frame": _D.keep_first_frame}
KEYS = ("motion_fidelity", "trajectory_shape", "field_agreement_moving")


def load(generator=GENERATOR, codec=CODEC):
    gen, meta = load_backbone(generator, "generator")
    return gen.eval().requires_grad_(False), PatchPCACodec.load(codec), i2v.layout_of(gen, meta)


def cases(clip_seed: int, names=None):
    """[(case, frame-0 foreground mask or None, prepared source)] for the demo's cases (clip seeds clip_seed + k),
    scored as the demo scores them (`moaw_core.cli.demo.source_motion`: the object's [T, H, W] mask)."""
    out = []
    for k, (name, *_) in enumerate(CASES):
        if names and name not in names:
            continue
        case = build_case(name, clip_seed + k, 8, 64, 2.0)
        mask = None if case.fg_mask is None else case.fg_mask[0]
        out.append((case, mask, prepare_source(case.source.numpy(), case.fg_mask)))
    return out


def score(src, video: torch.Tensor, image: torch.Tensor) -> dict:
    s = score_transfer(src, video.numpy())
    return {**{k: float(s[k]) for k in KEYS}, "psnr_frame0": float(frame0_fidelity(video.numpy(), image.numpy())
                                                                    ["psnr_frame0"])}


def plain_runs(models, case_list, seeds) -> dict:
    gen, codec, layout = models
    out = {}
    for case, _, src in case_list:
        for s in seeds:
            v = det_i2v.animate_i2v(gen, codec, layout, case.image, case.source.shape[0], s, None, **SAMPLING)
            out[(case.name, s)] = (v, score(src, v, case.image))
    return out


def _summary(rows: list[dict]) -> dict:
    res = {}
    for k in KEYS + ("psnr_frame0",):
        d = [r["det"][k] - r["plain"][k] for r in rows]
        res[k] = {"plain": statistics.mean(r["plain"][k] for r in rows), "det": statistics.mean(r["det"][k] for r in rows),
                  "gain_mean": statistics.mean(d), "gain_std": statistics.stdev(d) if len(d) > 1 else 0.0,
                  "det_higher": int(sum(x > 0 for x in d)), "n": len(d)}
    kinds = sorted({r["kind"] for r in rows})
    res["mf_gain_per_kind"] = {kd: statistics.mean(r["det"]["motion_fidelity"] - r["plain"]["motion_fidelity"]
                                                   for r in rows if r["kind"] == kd) for kd in kinds}
    res["hf_ratio_det_over_plain"] = statistics.mean(r["hf_ratio"] for r in rows)
    return res


def tune(args) -> int:
    models = load(args.generator, args.codec)
    gen, codec, layout = models
    case_list = cases(args.clip_seed, args.cases)
    plain = plain_runs(models, case_list, args.seeds)
    snaps = sorted(set(args.steps))
    results = {}   # (lr, tw, steps, fraction) -> rows
    for lr in args.lr:
        for tw in args.track_weight:
            for case, mask, src in case_list:
                cfg = det_i2v.train_config(det_i2v.DEFAULTS, steps=snaps[-1], lr=lr, track_weight=tw)
                adapters, kept = adapters_for(gen, seed=cfg.seed), {}

                def progress(step, total, rec, adapters=adapters, kept=kept):
                    if step in snaps[:-1]:
                        kept[step] = copy.deepcopy(adapters)
                t0 = time.perf_counter()
                trained = _train(models, case, mask, cfg, adapters, progress)
                secs = time.perf_counter() - t0
                kept[snaps[-1]] = trained.adapters
                for st, ad in kept.items():
                    for fr in args.fraction:
                        for s in args.seeds:
                            v = det_i2v.animate_i2v(gen, codec, layout, case.image, case.source.shape[0], s, ad,
                                                    fraction=fr, **SAMPLING)
                            pv, ps = plain[(case.name, s)]
                            results.setdefault((lr, tw, st, fr), []).append(
                                {"case": case.name, "kind": case.kind, "seed": s, "plain": ps,
                                 "det": score(src, v, case.image), "hf_ratio": hf_energy_ratio(v.numpy(), pv.numpy()),
                                 "train_s": secs * st / snaps[-1]})
                print(json.dumps({"progress": case.name, "lr": lr, "track_weight": tw, "train_s": round(secs, 1),
                                  "loss_first_last": [trained.state.losses[0]["loss"], trained.state.losses[-1]["loss"]]}),
                      flush=True)
            for key in [k for k in results if k[0] == lr and k[1] == tw]:
                rows = results[key]
                line = {"lr": key[0], "track_weight": key[1], "steps": key[2], "fraction": key[3], **_summary(rows),
                        "train_s_per_video": statistics.mean(r["train_s"] for r in rows)}
                with open(args.out, "a") as f:
                    f.write(json.dumps(line) + "\n")
                print(json.dumps(line), flush=True)
    return 0


def _train(models, case, mask, cfg, adapters, progress):
    """train_i2v with given starting adapters (so the progress callback can snapshot them)."""
    from moaw_core.det.files import TrainedDeT
    from moaw_core.det.pipeline import train_det
    from moaw_core.det.tracks import latent_tracks, source_tracks

    gen, codec, layout = models
    x0 = codec.encode(case.source)
    cond = i2v.image_condition(codec.encode, case.source[0], case.source.shape[0], layout)[0]
    tracks = None
    if cfg.track_weight > 0:
        pts, vis = source_tracks(case.source, "lk", 100, mask, cfg.seed)
        tracks = latent_tracks(pts, vis, tuple(case.source.shape[1:3]), tuple(x0.shape[2:]), 1)
    a, state, secs = train_det(gen, x0, cfg, tracks, adapters=adapters, condition=lambda x, _: torch.cat([x, cond], 1),
                               progress=progress)
    return TrainedDeT(a, {"seconds": secs}, state)


def evaluate(args) -> int:
    from moaw_core.cli import visualize as viz

    models = load(args.generator, args.codec)
    gen, codec, layout = models
    defaults = det_i2v.load_defaults(args.generator)
    if args.defaults:   # another defaults file (e.g. a quick check with few steps)
        d = json.loads(Path(args.defaults).read_text())
        defaults = {**defaults, **{k: v for k, v in d.items() if k != "train"},
                    "train": {**defaults["train"], **d.get("train", {})}}
    frames_dir = Path(args.out).with_name(Path(args.out).stem + "_frames")
    frames_dir.mkdir(parents=True, exist_ok=True)
    runs, t0 = [], time.perf_counter()
    case_list = cases(args.clip_seed, args.cases)
    plain = plain_runs(models, case_list, args.seeds)
    for case, mask, src in case_list:
        out = det_i2v.transfer_case(gen, codec, layout, case.source, case.image, args.seeds, defaults, mask=mask,
                                    **SAMPLING)
        ctl = None
        if args.control:   # must fail: adapters trained on the time-reversed source, scored against the source
            rmask = None if case.fg_mask is None else case.fg_mask[-1]
            ctl = det_i2v.transfer_case(gen, codec, layout, case.source.flip(0), case.image, args.seeds, defaults,
                                        mask=rmask, **SAMPLING)
        for s in args.seeds:
            pv, ps = plain[(case.name, s)]
            v = out["videos"][s]
            row = {"case": case.name, "kind": case.kind, "seed": s, "plain": ps, "det": score(src, v, case.image),
                   "hf_ratio": hf_energy_ratio(v.numpy(), pv.numpy()), "train_s": out["train_seconds"]}
            if ctl is not None:
                row["det_reversed"] = score(src, ctl["videos"][s], case.image)
                row["hf_ratio_reversed"] = hf_energy_ratio(ctl["videos"][s].numpy(), pv.numpy())
            runs.append(row)
        s0 = args.seeds[0]
        rows = [viz.label(viz.to_uint8(case.source, 4), f"source {case.name}"),
                viz.label(viz.to_uint8(plain[(case.name, s0)][0], 4), "plain"),
                viz.label(viz.to_uint8(out["videos"][s0], 4), "DeT")]
        if ctl is not None:
            rows.append(viz.label(viz.to_uint8(ctl["videos"][s0], 4), "DeT rev."))
        viz.save_grid_png(rows, frames_dir / f"{case.name}.png")
        losses = out["trained"].state.losses
        print(json.dumps({"case": case.name, "train_s": round(out["train_seconds"], 1),
                          "loss_first_last": [losses[0]["loss"], losses[-1]["loss"]],
                          "mf_gain": [round(r["det"]["motion_fidelity"] - r["plain"]["motion_fidelity"], 3)
                                      for r in runs if r["case"] == case.name]}), flush=True)
    summary = _summary(runs)
    if args.control:
        summary["control_reversed"] = _summary([{**r, "det": r["det_reversed"], "hf_ratio": r["hf_ratio_reversed"]}
                                                 for r in runs])
    report = {"summary": summary, "train_seconds_per_video": statistics.mean(r["train_s"] for r in runs[::len(args.seeds)]),
              "defaults": defaults, "sampling": SAMPLING, "clip_seed": args.clip_seed, "seeds": args.seeds,
              "torch_threads": torch.get_num_threads(), "runs": runs, "total_s": time.perf_counter() - t0}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["summary"], indent=1))
    return 0


def colour(args) -> int:
    """Appearance leak, read back from the eval's PNGs (first seed, 8-bit, 4x): for the plain, DeT and DeT-reversed
    rows, the mean over frames 1..T-1 of the distance (0-255, L2 over RGB) of each frame's mean colour to the given
    image's (frame 0, held) and to the source frame's mean colour."""
    import cv2

    frames_dir = Path(args.out).with_name(Path(args.out).stem + "_frames")
    cell_h, cell_w, size = 2 + 18 + 256 + 2, 260, 256
    res = {}
    for png in sorted([*frames_dir.glob("*.png"), *frames_dir.glob("*.jpg")]):
        img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float64)
        rows = img.shape[0] // cell_h
        means = np.array([[img[r * cell_h + 20:r * cell_h + 20 + size, t * cell_w + 2:t * cell_w + 2 + size].mean((0, 1))
                           for t in range(8)] for r in range(rows)])                                   # [rows, 8, 3]
        names = ["source", "plain", "det", "det_reversed"][:rows]
        res[png.stem] = {n: {"to_image": float(np.linalg.norm(means[i, 1:] - means[i, :1], axis=-1).mean()),
                             "to_source": float(np.linalg.norm(means[i, 1:] - means[0, 1:], axis=-1).mean())}
                         for i, n in enumerate(names) if n != "source"}
    print(json.dumps(res, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("tune", "eval", "colour"))
    ap.add_argument("--generator", default=str(GENERATOR))
    ap.add_argument("--codec", default=str(CODEC))
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", nargs="*", default=None, help="subset of case names (default all six)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--clip-seed", type=int, default=None)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--track-weight", type=float, nargs="+", default=[0.1])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--fraction", type=float, nargs="+", default=[0.35, 1.0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--defaults", default="", help="eval: a DeT defaults JSON instead of <generator>.det.json")
    ap.add_argument("--control", action="store_true", help="eval: also train on the time-reversed source (must fail)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tuning = args.mode == "tune"
    args.seeds = args.seeds or ([10, 11] if tuning else [0, 1, 2, 3, 4])
    args.clip_seed = args.clip_seed if args.clip_seed is not None else (200_000 if tuning else 100_000)
    if tuning and args.clip_seed < 200_000:
        raise SystemExit("tune: use tuning clips (clip seed >= 200000); the reported cases use 100000+")
    if args.mode == "colour":
        return colour(args)
    return tune(args) if tuning else evaluate(args)


if __name__ == "__main__":
    raise SystemExit(main())
