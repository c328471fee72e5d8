"""MOFT on the demo's held-out cases (bundled tiny generator + codec): plain vs MOFT-guided, same seeds and noise,
scored against the source with the fixed metrics (`moaw_core.metrics.score_transfer`: dense DIS tracks, queries
on the moving object's mask). A stop-gap until the demo's report has its own MOFT row; writes JSON.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/moft_demo_cases.py --out bench/results/moft_demo_cases.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.metrics.report import score_against_source, summary_stats  # noqa: E402
from moaw_core.metrics import prepare_source  # noqa: E402
from moaw_core.data.sources import synthetic_source  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.engine.transfer import generate  # noqa: E402
from moaw_core.moft import MoftChannels, MoftGuidanceConfig, channels_path, guided_sample, reference_from_model  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402

# The T2V demo's clips and queries (the Moaw demo became image-to-video): (name, camera, object motion).
CLIPS = (("object_right", "static", "right"), ("object_down", "static", "down"), ("pan_left", "pan_left", "none"))


def _source(clip):
    """The clip prepared for scoring: queries on the moving objects' mask when it has any, else where it moves."""
    fg = (clip.layer_index > 0).numpy()
    return prepare_source(clip.video.numpy(), fg if fg[0].any() else None)


GENERATOR = ROOT / "models" / "generators" / "moaw_tiny_wan_generator.safetensors"
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "moft_demo_cases.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--weight", type=float, default=8.0)
    ap.add_argument("--step-size", type=float, default=0.5)
    ap.add_argument("--loss", default="mse")
    ap.add_argument("--channels", default="file", choices=("file", "svd"))
    a = ap.parse_args()
    gen = load_backbone(GENERATOR, "generator")[0].eval()
    codec = PatchPCACodec.load(CODEC)
    chans = MoftChannels.load(channels_path(GENERATOR))
    cfg = MoftGuidanceConfig(weight=a.weight, step_size=a.step_size, loss=a.loss)
    runs, t0 = [], time.perf_counter()
    for k, (name, camera, objects) in enumerate(CLIPS):
        clip = synthetic_source(100_000 + k, camera=camera, objects=objects, speed=2.0)
        src = _source(clip)
        lat = codec.encode(clip.video)
        ref = reference_from_model(gen, lat, chans.layer, chans.sigma, chans if a.channels == "file" else None)
        for seed in a.seeds:
            row = {"clip": name, "seed": seed}
            plain = generate(gen, lat.shape, seed=seed, steps=a.steps)
            guided, losses = guided_sample(gen, lat.shape, ref, cfg, seed=seed, steps=a.steps)
            for kind, x in (("plain", plain), ("moft", guided)):
                s = score_against_source(src, codec.decode(x)[0].clamp(0, 1))
                row[kind] = {m: s[m] for m in ("motion_fidelity", "trajectory_shape", "field_agreement_moving")}
            row["loss_first_last"] = [losses[min(losses)][0], losses[max(losses)][-1]]
            runs.append(row)
            print(json.dumps(row))
    summary = {}
    for m in ("motion_fidelity", "trajectory_shape", "field_agreement_moving"):
        p = [r["plain"][m] for r in runs]
        g = [r["moft"][m] for r in runs]
        summary[m] = {"plain": summary_stats(p), "moft": summary_stats(g),
                      "moft_minus_plain": summary_stats([b - c for c, b in zip(p, g)]),
                      "moft_higher": int(np.sum(np.asarray(g) > np.asarray(p)))}
    out = {"summary": summary, "runs": runs, "settings": {**vars(a), "layer": chans.layer, "sigma": chans.sigma,
           "window": [cfg.start, cfg.end], "repeats": cfg.repeats}, "time_s": time.perf_counter() - t0}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
