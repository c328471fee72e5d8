"""Select MOFT motion channels for the bundled tiny generator, block by block, and keep the block that separates
held-out pan-left / pan-right clips best. Writes `<generator>.moft.json` and prints the per-block table.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/select_moft_channels.py [--clips 8] [--heldout 8]

Selection clips use seed 0, held-out clips seed 1 (other scenes and speeds); both at 8 x 64 x 64, encoded by the
bundled codec, noised to sigma 0.2 with frame-shared noise, one forward.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.engine.adapters import detect  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.moft.channels import channels_path, dataset_series, select_channels, separation_accuracy  # noqa: E402
from moaw_core.moft.diffusers import feature_grid  # noqa: E402
from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402

GENERATOR = ROOT / "models" / "generators" / "moaw_tiny_wan_generator.safetensors"
CODEC = ROOT / "models" / "codecs" / "moaw_patch_pca_codec.safetensors"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--sigma", type=float, default=0.2)
    ap.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    a = ap.parse_args()
    gen = load_backbone(GENERATOR, "generator")[0].eval()
    codec = PatchPCACodec.load(CODEC)
    adapter = detect(gen)
    fp = adapter.fingerprint(gen)
    held = build_motion_dataset(MotionDatasetConfig(classes=("pan_left", "pan_right"), clips_per_class=a.heldout,
                                                    seed=1))
    rows, best = [], None
    for layer in [lay.name for lay in adapter.layers(gen)]:
        def features(video, layer=layer):
            return feature_grid(gen, codec.encode(video[None]), layer, a.sigma)

        chans = select_channels(features, layer, a.sigma, fp, clips=a.clips)
        acc = separation_accuracy(dataset_series(features, held.videos), held.labels, chans)
        rows.append({"layer": layer, "channels": len(chans.channels), "selection_accuracy": chans.train_accuracy,
                     "heldout_accuracy": acc})
        print(json.dumps(rows[-1]))
        if best is None or acc > best[1]:
            best = (chans, acc)
    chans, acc = best
    if not a.dry_run:
        path = chans.save(channels_path(GENERATOR))
        print(f"kept {chans.layer} (held-out accuracy {acc:.2f}); wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
