"""The main job: motion transfer on the bundled tiny models, measured and made visible.

    python -m moaw_core demo --out out/demo

For each source clip (rendered on the spot by the synthetic generator, so nothing outside the repository is
needed) the tracker runs on the clip and its block features are cached; then the generator samples each seed
twice, without and with injection (same noise). Both outputs and the source are tracked with OpenCV
Lucas-Kanade on the same grid, and scored against the source (motion fidelity, trajectory shape).
Outputs in --out: `transfer_<clip>.gif` (source | no injection | injected, tracks drawn, first seed),
`grid.png`, `report.json`.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from moaw_core.engine.checkpoint import load_backbone, load_tracker, sampling_defaults
from moaw_core.tracking.codecs import PatchPCACodec
from moaw_core.tracking.cv_trackers import track_points_lk
from moaw_core.engine.inject import InjectConfig
from moaw_core.metrics.motion import grid_in_box, motion_fidelity, trajectory_shape
from moaw_core.data.sources import synthetic_source
from moaw_core.tracking.tracks import grid_points
from moaw_core.engine.transfer import extract_tracker_features, generate
from moaw_core.cli import CODEC, GENERATOR, MODELS, TRACKER  # noqa: F401 (bench imports them from here)
from moaw_core.cli import visualize as viz

# Source clips: (name, camera, object motion). Seeds far from the training pool's.
CLIPS = (("object_right", "static", "right"), ("object_down", "static", "down"), ("pan_left", "pan_left", "none"))


@dataclass
class DemoConfig:
    out: str = "out/demo"
    generator: str = str(GENERATOR)
    tracker: str = str(TRACKER)
    codec: str = str(CODEC)
    layers: str = ""                  # "" = the selection stored next to the tracker (<tracker>.layers.json)
    clips: tuple[str, ...] = tuple(c[0] for c in CLIPS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    speed: float = 2.0
    tracker_steps: int = 0            # 0 = the tracker file's recorded schedule
    gen_steps: int = 20
    shift: float = 1.0
    strength: float = 0.5             # defaults chosen on held-out tuning clips (docs/DEMO.md), not the report's
    start: float = 0.0
    end: float = 0.5
    mode: str = "add"
    normalize: bool = True
    remove_content: bool = True         # MOFT content removal: inject the features' change over time
    grid: int = 8                     # LK query points: grid x grid over the frame
    clip_seed: int = 100_000
    timings: dict = field(default_factory=dict)


@dataclass
class Models:
    """The three files of a Moaw setup, loaded: generator, tracker (+ its metadata) and latent codec."""

    generator: torch.nn.Module
    tracker: torch.nn.Module
    tracker_meta: dict
    codec: PatchPCACodec

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
    return Models(load_backbone(generator, "generator")[0], trk, meta, PatchPCACodec.load(codec))


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


def _queries(clip, n: int) -> torch.Tensor:
    """Grid query points: inside the moving objects' box when the clip has foreground objects (as DMT uses
    the source's foreground box; a static background would otherwise dominate the score), else the frame."""
    T, H, W, _ = clip.video.shape
    fg = clip.layer_index[0] > 0
    if bool(fg.any()):
        return torch.as_tensor(grid_in_box(fg.numpy(), n))
    return grid_points(H, W, n)


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


def run_demo(cfg: DemoConfig, progress=None) -> dict:
    """Run the demo; returns the report (also written to <out>/report.json)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    models = load_models(cfg.generator, cfg.tracker, cfg.codec)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    generator, tracker, codec = models.generator, models.tracker, models.codec
    sampling = models.sampling(cfg.tracker_steps or None)
    layers = resolve_layers(cfg.layers, tracker, cfg.tracker)
    inject = InjectConfig(layers=tuple(layers), strength=cfg.strength, mode=cfg.mode, start=cfg.start, end=cfg.end,
                          normalize=cfg.normalize, remove_content=cfg.remove_content)
    clips = {c[0]: c for c in CLIPS}
    unknown = [c for c in cfg.clips if c not in clips]
    if unknown:
        raise ValueError(f"demo: unknown clip(s) {unknown}; known: {list(clips)}")
    results, rows, t_extract, t_gen = [], [], 0.0, 0.0
    bar = tqdm(total=len(cfg.clips) * (1 + 2 * len(cfg.seeds)), desc="moaw demo", disable=progress is False)
    for k, clip_name in enumerate(cfg.clips):
        _, camera, objects = clips[clip_name]
        clip = synthetic_source(cfg.clip_seed + k, camera=camera, objects=objects, speed=cfg.speed)
        T, H, W, _ = clip.video.shape
        queries = _queries(clip, cfg.grid)
        src_pts, src_vis = track_points_lk(clip.video, queries)
        t0 = time.perf_counter()
        feats, _ = extract_tracker_features(tracker, codec.encode(clip.video), layers, sampling["steps"],
                                            sampling["shift"], seed=0, source=f"demo clip {clip_name}",
                                            init_noise=sampling["init_noise"])
        t_extract += time.perf_counter() - t0
        bar.update(1)
        shape = (1, codec.latent_channels, T, H // codec.patch, W // codec.patch)
        for seed in cfg.seeds:
            row = {"clip": clip_name, "seed": seed}
            for kind in ("plain", "injected"):
                t0 = time.perf_counter()
                extra = {"features": feats, "inject": inject} if kind == "injected" else {}
                lat = generate(generator, shape, seed=seed, steps=cfg.gen_steps, shift=cfg.shift, **extra)
                t_gen += time.perf_counter() - t0
                video = codec.decode(lat)[0].clamp(0, 1)
                s = score_against_source(src_pts, src_vis, video, queries, (H, W))
                row[kind] = {key: s[key] for key in ("motion_fidelity", "trajectory_shape", "untrackable")}
                if seed == cfg.seeds[0]:
                    row[kind + "_panel"] = viz.label(viz.draw_tracks(video, s["points"], s["visible"]), kind)
                bar.update(1)
            if seed == cfg.seeds[0]:
                src_panel = viz.label(viz.draw_tracks(clip.video, src_pts, src_vis), f"source {clip_name}")
                panels = [src_panel, row.pop("plain_panel"), row.pop("injected_panel")]
                viz.save_gif(viz.side_by_side(panels), out / f"transfer_{clip_name}.gif")
                rows.extend(panels)
            results.append(row)
    bar.close()
    viz.save_grid_png(rows, out / "grid.png")
    report = _report(cfg, layers, results, t_extract, t_gen, time.perf_counter() - t_start)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary_stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def _report(cfg: DemoConfig, layers, results, t_extract, t_gen, t_total) -> dict:
    summary = {}
    for metric in ("motion_fidelity", "trajectory_shape"):
        plain = [r["plain"][metric] for r in results]
        inj = [r["injected"][metric] for r in results]
        summary[metric] = {"plain": summary_stats(plain), "injected": summary_stats(inj),
                           "injected_minus_plain": summary_stats([b - a for a, b in zip(plain, inj)])}
    per_clip = {}
    for r in results:
        d = per_clip.setdefault(r["clip"], {"plain": [], "injected": []})
        d["plain"].append(r["plain"]["motion_fidelity"])
        d["injected"].append(r["injected"]["motion_fidelity"])
    settings = {k: v for k, v in asdict(cfg).items() if k != "timings"}
    return {"summary": summary,
            "per_clip_motion_fidelity": {c: {k: summary_stats(v) for k, v in d.items()} for c, d in per_clip.items()},
            "runs": results, "layers": list(layers), "settings": settings,
            "timings_s": {"extract_total": t_extract, "generate_total": t_gen, "total": t_total,
                          "generations": 2 * len(results)}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    p.add_argument("--out", default=d.out, help="output folder")
    for name in ("generator", "tracker", "codec"):
        p.add_argument(f"--{name}", default=getattr(d, name), help=f"{name} model file")
    p.add_argument("--layers", default=d.layers, help="layer spec ('' = the selection stored next to the tracker)")
    p.add_argument("--clips", nargs="+", default=list(d.clips), help=f"source clips from {[c[0] for c in CLIPS]}")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds))
    for name in ("tracker_steps", "gen_steps", "grid"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("shift", "strength", "start", "end", "speed"):
        p.add_argument("--" + name, type=float, default=getattr(d, name))
    p.add_argument("--mode", default=d.mode, choices=("add", "replace", "blend"))
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=d.normalize)
    p.add_argument("--remove-content", action=argparse.BooleanOptionalAction, default=d.remove_content,
                   help="MOFT content removal: subtract the features' mean over frames before injecting")


def main(args: argparse.Namespace) -> int:
    fields = DemoConfig.__dataclass_fields__
    cfg = DemoConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in fields})
    report = run_demo(cfg)
    s = report["summary"]["motion_fidelity"]
    print(f"motion fidelity: no injection {s['plain']['mean']:.3f} ± {s['plain']['std']:.3f}, "
          f"injected {s['injected']['mean']:.3f} ± {s['injected']['std']:.3f} "
          f"(n={s['plain']['n']}); outputs in {cfg.out}")
    return 0
