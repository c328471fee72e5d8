"""The `score` verb: score every (layer, step) of a tracker or generator file on the motion-labelled dataset
(`moaw_core.selection.layer_selection`) and write scores.json, heatmap.png and top_k.txt."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from moaw_core.cli import CODEC
from moaw_core.cli.limits import require_ints
from moaw_core.selection.layer_selection import (SCORES, FeatureSource, GeneratorSource, ScoreConfig, TrackerSource,
                                                 score_layers, training_free_sigmas)
from moaw_core.selection.motion_dataset import GROUPS, MotionDatasetConfig, build_motion_dataset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--tracker", help="Moaw tracker file (features while it samples tracks)")
    src.add_argument("--generator", help="Moaw generator file (training-free features of noised latents)")
    parser.add_argument("--codec", default=str(CODEC), help="demo codec (video->latents)")
    parser.add_argument("--out", default="out/layer_scores", help="folder for scores.json, heatmap.png, top_k.txt")
    parser.add_argument("--classes", default="all", choices=sorted(GROUPS), help="motion classes to score")
    parser.add_argument("--clips-per-class", type=int, default=8)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--speed", type=float, default=2.0, help="px per frame")
    parser.add_argument("--texture-dir", default=None, help="folder of videos/images for real textures")
    parser.add_argument("--steps", type=int, default=None,
                        help="tracker: sampling steps (default: the file's schedule); generator: noise levels (3)")
    parser.add_argument("--shift", type=float, default=None, help="schedule shift (default: the file's)")
    parser.add_argument("--layers", nargs="+", default=None, help="layer names to score (default: all)")
    parser.add_argument("--layers-per-pass", type=int, default=0, help="capture this many layers per pass (0 = all)")
    parser.add_argument("--by", default="probe", choices=SCORES, help="ranking score")
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--grid", type=int, default=2, help="spatial pooling grid (1 = global mean)")
    parser.add_argument("--pool", default="mean", choices=("mean", "rms"))
    parser.add_argument("--remove-content", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")


def source_from_args(args) -> FeatureSource:
    from moaw_core.engine.checkpoint import load_backbone

    if args.tracker:
        return TrackerSource.from_file(args.tracker, args.steps, args.shift)
    model, meta = load_backbone(args.generator, "generator")
    sched = json.loads(meta.get("moaw.schedule", "{}"))
    return GeneratorSource(model, training_free_sigmas(args.steps or 3, args.shift or float(sched.get("shift", 1.0))))


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from moaw_core.tracking.codecs import PatchPCACodec

    require_ints(1, clips_per_class=args.clips_per_class, steps=args.steps, top_k=args.top_k, grid=args.grid)
    require_ints(2, frames=args.frames)  # motion needs two frames
    require_ints(8, size=min(args.size))
    require_ints(0, layers_per_pass=args.layers_per_pass, threads=args.threads)
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = PatchPCACodec.load(args.codec)
    source = source_from_args(args)
    dcfg = MotionDatasetConfig(classes=args.classes, clips_per_class=args.clips_per_class, frames=args.frames,
                               height=args.size[0], width=args.size[1], speed=args.speed,
                               texture_dir=args.texture_dir, seed=args.seed)
    scfg = ScoreConfig(pool=args.pool, grid=args.grid, remove_content=args.remove_content, seed=args.seed,
                       by=args.by, layers_per_pass=args.layers_per_pass)
    with tqdm(desc="render", unit="clip") as bar:
        dataset = build_motion_dataset(dcfg, lambda d, n: (setattr(bar, "total", n), bar.update(d - bar.n)))
    with tqdm(desc="capture", unit="clip") as bar:
        scores = score_layers(source, dataset, lambda v: codec.encode(v), args.layers, scfg,
                              lambda d, n: (setattr(bar, "total", n), bar.update(d - bar.n)))
    scores.meta["cli_args"] = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    out = Path(args.out)
    scores.save(out / "scores.json")
    scores.save_heatmap(out / "heatmap.png")
    best = scores.top_k(args.top_k)
    (out / "top_k.txt").write_text("\n".join(best) + "\n")
    print(f"{'layer':<12}{'step':>5}{'sigma':>7}{'fisher':>10}{'silhouette':>11}{'probe':>7}")
    for r in scores.rows[:10]:
        print(f"{r['layer']:<12}{r['step']:>5}{scores.sigmas[scores.steps.index(r['step'])]:>7.3f}"
              f"{r['fisher']:>10.3f}{r['silhouette']:>11.3f}{r['probe']:>7.3f}")
    print(f"top-{args.top_k} by {scores.by}: {best}; chance {scores.chance:.3f}; wrote {out}/scores.json, "
          f"heatmap.png, top_k.txt; {scores.meta['seconds']}")
    return 0
