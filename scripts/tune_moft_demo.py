"""MOFT motion transfer in the demo's image-to-video setting: tune on TUNING cases, measure on the held-out ones.

    # tuning (clip seeds 200000+, generation seeds 10-11): one JSON line per setting
    OMP_NUM_THREADS=1 .venv/bin/python scripts/tune_moft_demo.py --seeds 10 11 \
        --settings '[{"loss": "cosine", "weight": 60}, ...]' --out out/moft_tune.json
    # store one setting (+ its channels) next to the I2V generator
    .venv/bin/python scripts/tune_moft_demo.py --settings '[{"loss": "cosine", "weight": 60, "repeats": 4}]' \
        --write --out /dev/null
    # held-out (the demo's cases: clip seeds 100000+, seeds 0-4), the defaults stored next to the model:
    OMP_NUM_THREADS=1 .venv/bin/python scripts/tune_moft_demo.py --heldout --out bench/results/moft_demo_i2v.json

The demo's sampling (`moaw_core.cli.demo.DemoConfig`: the image's condition video noised to `denoise`, frame 0
held, 12 steps) with the bundled I2V generator, plain and MOFT-guided with the same noise. The reference: the
source noised to `sigma` with its own first frame as the condition, one forward. Channels: PCA on rendered
pan-left / pan-right clips (`moaw_core.moft.select_channels`, seed 0: neither tuning nor held-out scenes), per
(block, pooling, sigma). Scored as the demo scores (`moaw_core.metrics.score_transfer` with the case's foreground
mask on object cases, the whole frame on camera cases); on object cases the guidance region (`mask`) is the area
the source's object covers over the clip. Held-out adds a control that must lose: guidance towards the
source played backwards.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.cli import demo as D  # noqa: E402
from moaw_core.engine import i2v  # noqa: E402
from moaw_core.engine.checkpoint import load_backbone  # noqa: E402
from moaw_core.engine.transfer import generate  # noqa: E402
from moaw_core.metrics import prepare_source, score_transfer  # noqa: E402
from moaw_core.moft import MoftGuidanceConfig, guided_sample, reference_from_model, select_channels  # noqa: E402
from moaw_core.moft.channels import MoftChannels, channels_path  # noqa: E402
from moaw_core.tracking.codecs import PatchPCACodec  # noqa: E402


@dataclass(frozen=True)
class Setting:
    """One MOFT setting: reference (layer, sigma, pooling, k channels, mask) and guidance (window, repeats, ...)."""

    layer: str = "block.2"
    sigma: float = 0.2
    pooling: str = "signed"
    k: int = 10
    mask: bool = True
    start: float = 0.0
    end: float = 0.42
    repeats: int = 2
    loss: str = "mse"
    weight: float = 8.0
    step_size: float = 0.5

    def guidance(self) -> dict:
        return {k: getattr(self, k) for k in ("start", "end", "repeats", "loss", "weight", "step_size", "mask")}


KEYS = ("motion_fidelity", "trajectory_shape", "field_agreement_moving", "field_agreement_frame",
        "temporal_consistency")


class Setup:
    def __init__(self, cfg):
        self.cfg = cfg
        gen, meta = load_backbone(D.GENERATOR, "generator")
        self.gen, self.layout = gen.eval(), i2v.layout_of(gen, meta)
        self.codec = PatchPCACodec.load(D.CODEC)
        self.fp = __import__("moaw_core.engine.adapters", fromlist=["detect"]).detect(gen).fingerprint(gen)
        self._chans = {}

    def condition(self, image, frames):
        return i2v.image_condition(self.codec.encode, image, frames, self.layout)

    def channels(self, layer, sigma, pooling, k):
        key = (layer, sigma, pooling, k)
        if key not in self._chans:
            def feats(video):
                return self._grid(video, layer, sigma)
            with torch.no_grad():
                self._chans[key] = select_channels(feats, layer, sigma, self.fp, k=k, clips=8, pooling=pooling)
        return self._chans[key]

    def _grid(self, video, layer, sigma):
        from moaw_core.moft.diffusers import feature_grid
        cond = self.condition(video[0], video.shape[0])[0]
        return feature_grid(self.gen, self.codec.encode(video), layer, sigma, condition=cond)

    def sample(self, image, frames, seed, ref=None, gcfg=None):
        c = self.cfg
        cond, lat = self.condition(image, frames)
        keep = (lat, i2v.given_mask(frames, self.layout.given_frames)) if c.keep_first_frame else None
        kw = dict(seed=seed, steps=c.gen_steps, shift=c.shift, condition=cond, keep=keep, denoise=c.denoise,
                  init=lat if c.denoise < 1.0 else None)
        if ref is None:
            out, losses = generate(self.gen, tuple(lat.shape), **kw), {}
        else:
            out, losses = guided_sample(self.gen, tuple(lat.shape), ref, gcfg, **kw)
        return self.codec.decode(out)[0].clamp(0, 1), losses

    def reference(self, source, s: Setting, mask=None):
        chans = self.channels(s.layer, s.sigma, s.pooling, s.k)
        cond = self.condition(source[0], source.shape[0])[0]
        with torch.no_grad():
            return reference_from_model(self.gen, self.codec.encode(source), s.layer, s.sigma, chans,
                                        mask=mask if s.mask else None, condition=cond)


def _stats(x):
    return {"mean": statistics.fmean(x), "std": statistics.pstdev(x) if len(x) > 1 else 0.0, "n": len(x)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip-seed", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    ap.add_argument("--settings", default="[{}]", help="JSON list of dicts of Setting fields")
    ap.add_argument("--write", action="store_true", help="store the (single) setting next to the generator")
    ap.add_argument("--heldout", action="store_true",
                    help="the demo's held-out cases (clip seed 100000, seeds 0-4) with the stored defaults + controls")
    ap.add_argument("--frames-dir", default="", help="write source | plain | moft PNG strips of the first seed here")
    ap.add_argument("--cases", nargs="*", default=None, help="a subset of the demo's cases")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = D.DemoConfig(clip_seed=100_000 if a.heldout else a.clip_seed)
    if a.cases:
        cfg = replace(cfg, cases=tuple(a.cases))
    seeds = list(cfg.seeds) if a.heldout else a.seeds
    setup = Setup(cfg)
    if a.heldout:
        stored = MoftChannels.load(channels_path(D.GENERATOR))
        settings = [Setting(stored.layer, stored.sigma, stored.pooling, len(stored.channels), **stored.guidance)]
    else:
        settings = [Setting(**d) for d in json.loads(a.settings)]
    if a.write:
        if len(settings) != 1 or a.heldout:
            raise SystemExit("--write: give exactly one tuning setting")
        s = settings[0]
        chans = replace(setup.channels(s.layer, s.sigma, s.pooling, s.k), guidance=s.guidance())
        print(f"wrote {chans.save(channels_path(D.GENERATOR))}", file=sys.stderr)
        return 0
    cases = D._cases(cfg)
    prepared, plain = [], {}
    t0 = time.perf_counter()
    for case in cases:  # scored as the demo scores (its fg_mask); guided inside the region the object covers
        m = None if case.fg_mask is None else torch.as_tensor(case.fg_mask).float().amax(0)
        prepared.append((case, m, prepare_source(case.source.numpy(), case.fg_mask)))
        for seed in seeds:
            plain[(case.name, seed)] = setup.sample(case.image, cfg.frames, seed)[0]
    print(f"plain done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    results = []
    for s in settings:
        t1 = time.perf_counter()
        variants = {"moft": False, "moft_reversed": True} if a.heldout else {"moft": False}
        rows = []
        for case, m, src in prepared:
            refs = {v: setup.reference(case.source.flip(0) if rev else case.source, s, m) for v, rev in variants.items()}
            for seed in seeds:
                row = {"case": case.name, "kind": case.kind, "seed": seed,
                       "plain": {k: score_transfer(src, plain[(case.name, seed)])[k] for k in KEYS}}
                for v, ref in refs.items():
                    g = MoftGuidanceConfig(**{**s.guidance(), "mask": m if s.mask else None})
                    video, losses = setup.sample(case.image, cfg.frames, seed, ref, g)
                    row[v] = {k: score_transfer(src, video)[k] for k in KEYS}
                    row[v]["loss_first_last"] = [losses[min(losses)][0], losses[max(losses)][-1]]
                    if a.frames_dir and seed == seeds[0]:
                        from moaw_core.cli import visualize as viz  # noqa: F401
                        _strip(Path(a.frames_dir) / f"{case.name}_{v}.png",
                               [case.source, plain[(case.name, seed)], video])
                rows.append(row)
        summary = {"setting": asdict(s), "time_s": round(time.perf_counter() - t1, 1)}
        for v in variants:
            for key in ("motion_fidelity", "field_agreement_moving", "trajectory_shape"):
                d = [r[v][key] - r["plain"][key] for r in rows]
                summary[f"{v}_{key}"] = {"plain": _stats([r["plain"][key] for r in rows]),
                                         v: _stats([r[v][key] for r in rows]), "gain": _stats(d),
                                         "higher": sum(x > 0 for x in d)}
                for kind in ("camera", "object"):
                    dk = [r[v][key] - r["plain"][key] for r in rows if r["kind"] == kind]
                    summary[f"{v}_{key}"][f"gain_{kind}"] = statistics.fmean(dk) if dk else None
        summary["runs"] = rows
        results.append(summary)
        print(json.dumps({k: v for k, v in summary.items() if k != "runs"}), flush=True)
    out = {"heldout": a.heldout, "clip_seed": cfg.clip_seed, "seeds": seeds, "demo": {
        k: getattr(cfg, k) for k in ("frames", "size", "gen_steps", "denoise", "keep_first_frame", "shift")},
        "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def _strip(path: Path, videos) -> None:
    """Rows of frames (one row per video) as a PNG, 2x nearest upscaling."""
    import numpy as np
    from PIL import Image

    rows = [np.concatenate(list(v.numpy()), axis=1) for v in videos]
    img = (np.concatenate(rows, axis=0) * 255).round().astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(path)


if __name__ == "__main__":
    raise SystemExit(main())
