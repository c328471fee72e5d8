"""Why do (or don't) the tiny generators' MOFT channels separate left from right pans? A measurement.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/probe_moft_channels.py --out bench/results/moft_channel_probe.json

For each bundled generator (T2V, I2V with the clip's frame 0 as its condition), sigma, block: the features of
pan-left / pan-right clips (one forward, frame-shared noise) pooled several ways, and several classifiers fitted on
SELECTION clips (seed 0) and scored on HELD-OUT clips (seeds 1 and 2: other scenes and speeds). Chance is 0.5.

Poolings: `cr_mean` content removed (mean over frames subtracted per position), spatial mean per frame [T, C] (the
MOFT series); `raw_mean` the same without content removal; `vel` the mean over frames of the raw spatial mean [C]
(a constant "velocity" code, which content removal deletes by construction); `cr_sign` content removed, then the
spatial mean of the content-removed feature times the sign of the content's horizontal gradient (a motion-aware
pooling: a pan moves every texture edge the same way).
Classifiers: `trend` the shipped rule (PC1 channels, sign of the projection's trend over frames); `pc1_centroid`
PC1 channels, nearest class mean of the projected [T] series; `lda` nearest class mean along the selection clips'
class-mean difference on all features (the upper bound for a linear readout of this pooling).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.engine import i2v  # noqa: E402
from moaw_core.engine.adapters import detect  # noqa: E402
from moaw_core.engine.capture import flow_noise  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.engine.hooks import HookContext, attach  # noqa: E402
from moaw_core.engine.inject import remove_content  # noqa: E402
from moaw_core.moft.channels import MoftChannels, separation_accuracy  # noqa: E402
from moaw_core.moft.features import pca_channels  # noqa: E402
from moaw_core.selection.motion_dataset import MotionDatasetConfig, build_motion_dataset  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402
from moaw_core.tracking.tracker import null_condition  # noqa: E402

GENS = {"t2v": ROOT / "models/generators/moaw_tiny_wan_generator.safetensors",
        "i2v": ROOT / "models/generators/moaw_tiny_wan_i2v.safetensors"}
CODEC = ROOT / "models/codecs/moaw_patch_pca_codec.safetensors"


class _Grab:
    name = "probe_grab"

    def __init__(self, adapter):
        self.adapter, self.grids = adapter, {}

    def on_block(self, layer, hidden, ctx):
        self.grids[layer] = self.adapter.to_grid(hidden, ctx.latent_grid).detach().float()
        return hidden


@torch.no_grad()
def block_grids(gen, layout, codec, video, sigma, seed=0):
    """{layer: [T, H, W, C]} of one clip noised to sigma (frame-shared noise), I2V: frame 0 as the condition."""
    lat = codec.encode(video)
    n = torch.randn(lat.shape, generator=torch.Generator().manual_seed(seed))
    x, t = flow_noise(lat, n[:, :, :1].expand_as(n), sigma)
    if layout is not None:
        cond, _ = i2v.image_condition(codec.encode, video[0], video.shape[0], layout)
        x = torch.cat([x, cond], 1)
    ad = detect(gen)
    grab = _Grab(ad)
    with attach(gen, [grab], ad, HookContext(n_steps=1)):
        gen(x, torch.full((1,), float(t)), return_dict=False, **null_condition(gen, 1, x.device, x.dtype))
    return {k: v[0] for k, v in grab.grids.items()}


def poolings(grid):
    """grid [T, H, W, C] -> {name: features}."""
    cr = remove_content(grid[None])[0]
    mean0 = grid.mean(0)  # [H, W, C] content
    gx = torch.zeros_like(mean0)
    gx[:, 1:-1] = (mean0[:, 2:] - mean0[:, :-2]) / 2
    return {"cr_mean": cr.mean((1, 2)), "raw_mean": grid.mean((1, 2)), "vel": grid.mean((0, 1, 2))[None],
            "cr_sign": (cr * torch.sign(gx)[None]).mean((1, 2))}


def lda_acc(tr, ytr, te, yte):
    a, b = tr[ytr == 0].flatten(1).mean(0), tr[ytr == 1].flatten(1).mean(0)
    d = b - a
    s = te.flatten(1) @ d - (a + b) @ d / 2
    return float(((s > 0).long() == yte).double().mean())


def pc1_centroid_acc(tr, ytr, te, yte, k):
    ch, pc1 = pca_channels(tr, k)
    proj = lambda s: s[..., ch].double() @ pc1[ch].double()  # noqa: E731
    return lda_acc(proj(tr)[:, :, None], ytr, proj(te)[:, :, None], yte)


def trend_acc(tr, ytr, te, yte, k):
    from moaw_core.moft.channels import trend_scores
    ch, pc1 = pca_channels(tr, k)
    load = pc1[ch]
    if float(trend_scores(tr[ytr == 0], ch, load).mean()) > 0:
        load = -load
    return separation_accuracy(te, yte, MoftChannels("x", 0.2, ch, load.tolist()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "bench/results/moft_channel_probe.json"))
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.2, 0.5, 0.85])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--classes", nargs=2, default=["pan_left", "pan_right"])
    a = ap.parse_args()
    codec = PatchPCACodec.load(CODEC)
    sets = {s: build_motion_dataset(MotionDatasetConfig(classes=tuple(a.classes), clips_per_class=a.clips, seed=s))
            for s in (0, 1, 2)}
    rows, t0 = [], time.perf_counter()
    for gname, path in GENS.items():
        gen, meta = load_backbone(path, "generator")
        gen = gen.eval()
        layout = i2v.layout_of(gen, meta)
        for sigma in a.sigmas:
            pooled = {}  # (set, layer, pooling) -> [N, T', C]
            for s, ds in sets.items():
                for video in ds.videos:
                    for layer, grid in block_grids(gen, layout, codec, video, sigma).items():
                        for p, f in poolings(grid).items():
                            pooled.setdefault((s, layer, p), []).append(f)
            layers = sorted({k[1] for k in pooled})
            for layer in layers:
                for p in ("cr_mean", "raw_mean", "vel", "cr_sign"):
                    tr = torch.stack(pooled[(0, layer, p)])
                    ytr = sets[0].labels
                    te = torch.cat([torch.stack(pooled[(s, layer, p)]) for s in (1, 2)])
                    yte = torch.cat([sets[1].labels, sets[2].labels])
                    row = {"generator": gname, "sigma": sigma, "layer": layer, "pooling": p,
                           "lda": lda_acc(tr, ytr, te, yte)}
                    if tr.shape[1] > 1:
                        row["pc1_centroid"] = pc1_centroid_acc(tr, ytr, te, yte, a.k)
                        row["trend"] = trend_acc(tr, ytr, te, yte, a.k)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps({"settings": vars(a), "rows": rows, "time_s": time.perf_counter() - t0},
                                      indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
