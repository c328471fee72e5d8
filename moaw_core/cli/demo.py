"""The main job: image-to-video motion transfer on the bundled tiny models, measured and made visible.

    python -m moaw_core demo --out out/demo
    python -m moaw_core demo --source my_clip.mp4 --image my_frame.png --out out/mine

Each case (`moaw_core.data.demo_cases`) is a source video and an image to animate: camera motions transferred
to a different image, object motions transferred onto a restyled first frame of the source, or a user's pair.
The tracker runs on the source and its block features are cached; the image-to-video generator animates the
image for each seed twice, plain and with the features injected (same noise). Both outputs and the source are
tracked with OpenCV Lucas-Kanade from the same queries and scored (`score_run`). Outputs in --out:
`transfer_<case>.gif` (source | plain | injected, tracks drawn, first seed), `grid.png`, `report.json`.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from moaw_core.cli import visualize as viz
from moaw_core.data.demo_cases import CASES, Case, build_case, user_case
from moaw_core.engine import i2v
from moaw_core.engine.checkpoint import load_backbone, load_tracker, sampling_defaults
from moaw_core.engine.inject import InjectConfig
from moaw_core.engine.transfer import extract_tracker_features, generate
from moaw_core.metrics.motion import motion_fidelity, trajectory_shape
from moaw_core.tracking.codecs import PatchPCACodec
from moaw_core.tracking.cv_trackers import track_points_lk

MODELS = Path(__file__).resolve().parents[2] / "models"
GENERATOR = MODELS / "generators" / "moaw_tiny_wan_i2v.safetensors"
# The demo injects the step-0 tracker (the generator reading the source as its condition): measured on the tuning
# cases, the 837-step fine-tuned tracker transfers nothing (docs/DEMO.md).
TRACKER = MODELS / "trackers" / "moaw_tiny_wan_i2v_tracker_step0.safetensors"
CODEC = MODELS / "codecs" / "moaw_patch_pca_codec.safetensors"


@dataclass
class DemoConfig:
    out: str = "out/demo"
    generator: str = str(GENERATOR)
    tracker: str = str(TRACKER)
    codec: str = str(CODEC)
    layers: str = ""                  # "" = the selection stored next to the tracker (<tracker>.layers.json)
    cases: tuple[str, ...] = tuple(c[0] for c in CASES)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    clip_seed: int = 100_000          # case k uses clip seed clip_seed + k (tuning uses 200_000+)
    speed: float = 2.0
    source: str = ""                  # a user's pair: source video (file or frame folder) ...
    image: str = ""                   # ... and the image to animate (both resized to the model's clip)
    frames: int = 8
    size: int = 64
    tracker_steps: int = 0            # 0 = the tracker file's recorded schedule
    gen_steps: int = 12
    denoise: float = 0.85             # start from the condition video noised to this level (SDEdit; 1 = from noise)
    keep_first_frame: bool = True     # hold frame 0 at the image's latent (ComfyUI: the node's noise mask)
    shift: float = 1.0
    strength: float = 0.35            # injection defaults chosen on tuning cases (docs/DEMO.md), not the report's
    start: float = 0.0
    end: float = 0.5
    mode: str = "add"
    normalize: bool = True
    remove_content: bool = True       # MOFT content removal: inject the features' change over time
    timings: dict = field(default_factory=dict)


@dataclass
class Models:
    """The three files of a Moaw setup, loaded: generator (+ its I2V layout), tracker (+ metadata), codec."""

    generator: torch.nn.Module
    tracker: torch.nn.Module
    tracker_meta: dict
    codec: PatchPCACodec
    layout: i2v.I2VLayout | None = None

    def sampling(self, steps: int | None = None) -> dict:
        """The tracker's recorded schedule (steps, shift, init_noise); `steps` overrides."""
        return sampling_defaults(self.tracker_meta, steps)


def load_models(generator, tracker, codec, who: str = "demo") -> Models:
    """Load the model files, raising FileNotFoundError naming a missing one."""
    for name, path in (("generator", generator), ("tracker", tracker), ("codec", codec)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{who}: {name} model file {path} not found (the bundled models live in "
                                    f"{MODELS}; train them with the commands in docs/TRAINING.md)")
    trk, _, meta = load_tracker(tracker)
    gen, gen_meta = load_backbone(generator, "generator")
    return Models(gen, trk, meta, PatchPCACodec.load(codec), i2v.layout_of(gen, gen_meta))


def resolve_layers(spec: str, tracker: torch.nn.Module, tracker_path) -> list[str]:
    """Layers to capture and inject: a layer spec (`moaw_core.engine.layer_spec`); when empty, the selection stored
    next to the tracker file (`<tracker>.layers.json`: its chosen blocks and the rule that chose them), else every block."""
    from moaw_core.engine.adapters import detect
    from moaw_core.engine.layer_spec import parse_layer_spec

    available = [lay.name for lay in detect(tracker.backbone).layers(tracker.backbone)]
    if spec:
        return parse_layer_spec(spec, available)
    stored = Path(tracker_path).with_suffix(".layers.json")
    if stored.is_file():
        return parse_layer_spec(",".join(json.loads(stored.read_text())["selection"]), available)
    return available


def score_against_source(src_pts, src_vis, gen_video, queries, size) -> dict:
    """Track `gen_video` with LK from `queries` and score it against the source tracks. size: (H, W).

    When LK loses every query after the first frame, motion fidelity is undefined (no common visible step);
    the run then scores 0 — "no measurable motion", what the metric gives a static track against a moving
    one — and is flagged `untrackable`, so one such run cannot turn a whole report into NaN.
    """
    pts, vis = track_points_lk(gen_video, queries)
    mf = float(motion_fidelity(src_pts, pts, src_vis, vis)["motion_fidelity"])
    ts = float(trajectory_shape(src_pts, pts, image_size=size, seed=0)["trajectory_shape"])
    untrackable = mf != mf
    return {"motion_fidelity": 0.0 if untrackable else mf, "trajectory_shape": ts, "points": pts, "visible": vis,
            "untrackable": untrackable}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def hf_energy(video: torch.Tensor) -> float:
    """Mean squared Laplacian of the grey frames [T,H,W,3] (high-frequency energy: block texture raises it)."""
    g = video.float().mean(-1)[:, None]
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    return float((torch.nn.functional.conv2d(g, k) ** 2).mean())


def animate(models: Models, image: torch.Tensor, frames: int, seed: int, cfg: DemoConfig, features=None,
            inject: InjectConfig | None = None) -> torch.Tensor:
    """The image-to-video generation of one seed (plain, or with `features` injected). Returns [T,H,W,3]."""
    if models.layout is None:
        raise ValueError("generator: expected an image-to-video generator (moaw.i2v layout; `train --task i2v`), "
                         "got an unconditional one")
    codec = models.codec
    cond, lat = i2v.image_condition(codec.encode, image, frames, models.layout)
    keep = (lat, i2v.given_mask(frames, models.layout.given_frames)) if cfg.keep_first_frame else None
    out = generate(models.generator, tuple(lat.shape), seed=seed, steps=cfg.gen_steps, shift=cfg.shift,
                   features=features, inject=inject, condition=cond, keep=keep, denoise=cfg.denoise,
                   init=lat if cfg.denoise < 1.0 else None)
    return codec.decode(out)[0].clamp(0, 1)


def score_run(case: Case, src_pts, src_vis, video: torch.Tensor) -> dict:
    """Motion (against the source's LK tracks) and appearance (against the given image) of one generation."""
    H, W = video.shape[1:3]
    s = score_against_source(src_pts, src_vis, video, case.queries, (H, W))
    s["frame0_psnr_db"] = psnr(video[0], case.image)
    s["hf_energy"] = hf_energy(video)
    return s


_KEYS = ("motion_fidelity", "trajectory_shape", "untrackable", "frame0_psnr_db", "hf_energy")


def _cases(cfg: DemoConfig) -> list[Case]:
    if bool(cfg.source) != bool(cfg.image):
        raise ValueError(f"source/image: give both for a user's pair, got source={cfg.source!r} image={cfg.image!r}")
    if cfg.source:
        return [user_case(cfg.source, cfg.image, cfg.frames, cfg.size)]
    known = [c[0] for c in CASES]
    unknown = [c for c in cfg.cases if c not in known]
    if unknown:
        raise ValueError(f"demo: unknown case(s) {unknown}; known: {known}")
    return [build_case(name, cfg.clip_seed + known.index(name), cfg.frames, cfg.size, cfg.speed) for name in cfg.cases]


def run_demo(cfg: DemoConfig, progress=None) -> dict:
    """Run the demo; returns the report (also written to <out>/report.json)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    models = load_models(cfg.generator, cfg.tracker, cfg.codec)
    cases = _cases(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = models.sampling(cfg.tracker_steps or None)
    layers = resolve_layers(cfg.layers, models.tracker, cfg.tracker)
    inject = InjectConfig(layers=tuple(layers), strength=cfg.strength, mode=cfg.mode, start=cfg.start, end=cfg.end,
                          normalize=cfg.normalize, remove_content=cfg.remove_content)
    results, rows, t_extract, t_gen = [], [], 0.0, 0.0
    bar = tqdm(total=len(cases) * (1 + 2 * len(cfg.seeds)), desc="moaw demo", disable=progress is False)
    for case in cases:
        src_pts, src_vis = track_points_lk(case.source, case.queries)
        t0 = time.perf_counter()
        feats, _ = extract_tracker_features(models.tracker, models.codec.encode(case.source), layers,
                                            sampling["steps"], sampling["shift"], seed=0,
                                            source=f"demo case {case.name}", init_noise=sampling["init_noise"])
        t_extract += time.perf_counter() - t0
        bar.update(1)
        for seed in cfg.seeds:
            row = {"case": case.name, "kind": case.kind, "seed": seed}
            panels = []
            for kind in ("plain", "injected"):
                t0 = time.perf_counter()
                extra = {"features": feats, "inject": inject} if kind == "injected" else {}
                video = animate(models, case.image, case.source.shape[0], seed, cfg, **extra)
                t_gen += time.perf_counter() - t0
                s = score_run(case, src_pts, src_vis, video)
                row[kind] = {k: s[k] for k in _KEYS}
                panels.append(viz.label(viz.draw_tracks(video, s["points"], s["visible"]), kind))
                bar.update(1)
            if seed == cfg.seeds[0]:
                src = viz.label(viz.draw_tracks(case.source, src_pts, src_vis), f"source {case.name}")
                viz.save_gif(viz.side_by_side([src, *panels]), out / f"transfer_{case.name}.gif")
                rows.extend([src, *panels])
            results.append(row)
    bar.close()
    viz.save_grid_png(rows, out / "grid.png")
    report = _report(cfg, layers, cases, results, t_extract, t_gen, time.perf_counter() - t_start)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary_stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def _paired(runs: list[dict], metric: str) -> dict:
    plain = [r["plain"][metric] for r in runs]
    inj = [r["injected"][metric] for r in runs]
    return {"plain": summary_stats(plain), "injected": summary_stats(inj),
            "injected_minus_plain": summary_stats([b - a for a, b in zip(plain, inj)]),
            "injected_higher": int(sum(b > a for a, b in zip(plain, inj)))}


def _report(cfg: DemoConfig, layers, cases, results, t_extract, t_gen, t_total) -> dict:
    summary = {m: _paired(results, m) for m in ("motion_fidelity", "trajectory_shape", "frame0_psnr_db")}
    summary["hf_energy_ratio_injected_over_plain"] = summary_stats(
        [r["injected"]["hf_energy"] / max(r["plain"]["hf_energy"], 1e-12) for r in results])
    groups = {}
    for r in results:
        groups.setdefault(("case", r["case"]), []).append(r)
        groups.setdefault(("kind", r["kind"]), []).append(r)
    per = {f"{k}:{name}": {"motion_fidelity": _paired(rs, "motion_fidelity")} for (k, name), rs in groups.items()}
    settings = {k: v for k, v in asdict(cfg).items() if k != "timings"}
    notes = [c.note for c in cases if c.note]
    return {"summary": summary, "per_group": per, "runs": results, "layers": list(layers), "settings": settings,
            "notes": notes, "timings_s": {"extract_total": t_extract, "generate_total": t_gen, "total": t_total,
                                          "generations": 2 * len(results)}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    p.add_argument("--out", default=d.out, help="output folder")
    for name in ("generator", "tracker", "codec"):
        p.add_argument(f"--{name}", default=getattr(d, name), help=f"{name} model file")
    p.add_argument("--layers", default=d.layers, help="layer spec ('' = the selection stored next to the tracker)")
    p.add_argument("--cases", nargs="+", default=list(d.cases), help=f"cases from {[c[0] for c in CASES]}")
    p.add_argument("--source", default="", help="your source video (file or folder of frames); with --image")
    p.add_argument("--image", default="", help="your image to animate with the source's motion; with --source")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    for name in ("tracker_steps", "gen_steps", "clip_seed"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("shift", "strength", "start", "end", "speed", "denoise"):
        p.add_argument("--" + name, type=float, default=getattr(d, name))
    p.add_argument("--mode", default=d.mode, choices=("add", "replace", "blend"))
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=d.normalize)
    p.add_argument("--keep-first-frame", action=argparse.BooleanOptionalAction, default=d.keep_first_frame)
    p.add_argument("--remove-content", action=argparse.BooleanOptionalAction, default=d.remove_content,
                   help="MOFT content removal: subtract the features' mean over frames before injecting")


def main(args: argparse.Namespace) -> int:
    fields = DemoConfig.__dataclass_fields__
    cfg = DemoConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in fields})
    report = run_demo(cfg)
    s = report["summary"]
    mf, p0 = s["motion_fidelity"], s["frame0_psnr_db"]
    print(f"motion fidelity: plain {mf['plain']['mean']:.3f}, injected {mf['injected']['mean']:.3f}, "
          f"gain {mf['injected_minus_plain']['mean']:+.3f} ± {mf['injected_minus_plain']['std']:.3f} "
          f"(n={mf['plain']['n']}); frame-0 PSNR {p0['plain']['mean']:.1f} / {p0['injected']['mean']:.1f} dB; "
          f"HF energy ratio {s['hf_energy_ratio_injected_over_plain']['mean']:.2f}; outputs in {cfg.out}")
    for note in report["notes"]:
        print("note:", note)
    return 0
