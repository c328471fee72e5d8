"""Select MOFT motion channels for a bundled tiny generator, block by block, and keep the block that separates
held-out pan-left / pan-right clips best. Writes `<generator>.moft.json` and prints the per-block table.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/select_moft_channels.py [--generator t2v|i2v] [--pooling signed]

Selection clips use seed 0, held-out clips seed 1 (other scenes and speeds). Blocks tried: from a third of the depth
on (MOFT reads a mid-depth block; --layers to change); kept: the best held-out accuracy, ties -> the shallowest
block (the guidance's gradient pass stops at the feature block, so it is the cheapest). The unit test checks the written file on seed 2 clips, used by neither. Clips are
8 x 64 x 64, encoded by the bundled codec, noised to --sigma with frame-shared noise, one forward; the I2V
generator gets each clip's first frame as its condition (as the demo gives it the image to animate).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.engine import i2v  # noqa: E402
from moaw_core.engine.adapters import detect  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.moft.channels import (channels_path, dataset_series, select_channels, separation_accuracy,  # noqa: E402
                                     trend_scores)
from moaw_core.moft.diffusers import feature_grid  # noqa: E402
from moaw_core.moft.features import POOLINGS, check_pooling  # noqa: E402
from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402

GENERATORS = {"t2v": ROOT / "models" / "generators" / "moaw_tiny_wan_generator.safetensors",
              "i2v": ROOT / "models" / "generators" / "moaw_tiny_wan_i2v.safetensors"}
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"


def features_fn(gen, layout, codec, layer: str, sigma: float):
    """video [T,H,W,3] -> [1,T,h,w,C] features of `layer` (I2V: the clip's frame 0 as the condition)."""
    def features(video):
        cond = None if layout is None else i2v.image_condition(codec.encode, video[0], video.shape[0], layout)[0]
        return feature_grid(gen, codec.encode(video), layer, sigma, condition=cond)
    return features


def fisher(scores: torch.Tensor, labels: torch.Tensor) -> float:
    a, b = scores[labels == 0].double(), scores[labels == 1].double()
    return float((b.mean() - a.mean()) ** 2 / (a.var() + b.var() + 1e-12))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", default="t2v", choices=sorted(GENERATORS))
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--sigma", type=float, default=0.2)
    ap.add_argument("--pooling", default="signed", choices=POOLINGS)
    ap.add_argument("--layers", nargs="*", default=None, help="blocks to try (default: from a third of the depth on)")
    ap.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    a = ap.parse_args()
    path = GENERATORS[a.generator]
    gen, meta = load_backbone(path, "generator")
    gen = gen.eval()
    layout = i2v.layout_of(gen, meta)
    codec = PatchPCACodec.load(CODEC)
    adapter = detect(gen)
    fp = adapter.fingerprint(gen)
    held = build_motion_dataset(MotionDatasetConfig(classes=("pan_left", "pan_right"), clips_per_class=a.heldout,
                                                    seed=1))
    rows, best = [], None
    names = [lay.name for lay in adapter.layers(gen)]
    for layer in a.layers or names[len(names) // 3:]:
        feats = features_fn(gen, layout, codec, layer, a.sigma)
        with torch.no_grad():
            chans = select_channels(feats, layer, a.sigma, fp, clips=a.clips, pooling=a.pooling)
            series = dataset_series(feats, held.videos, pooling=a.pooling)
        acc = separation_accuracy(series, held.labels, chans)
        fr = fisher(trend_scores(series, chans.channels, chans.loadings, check_pooling(a.pooling)), held.labels)
        rows.append({"layer": layer, "channels": len(chans.channels), "selection_accuracy": chans.train_accuracy,
                     "heldout_accuracy": acc, "heldout_fisher": fr})
        print(json.dumps(rows[-1]), flush=True)
        if best is None or acc > best[1]:
            best = (chans, acc, fr)
    chans, acc, _ = best
    if not a.dry_run:
        out = chans.save(channels_path(path))
        print(f"kept {chans.layer} (held-out accuracy {acc:.2f}); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
