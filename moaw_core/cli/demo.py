"""The main job: image-to-video motion transfer on the bundled tiny models, measured and made visible.

    python -m moaw_core demo --out out/demo
    python -m moaw_core demo --methods moaw,moft,det        # also MOFT guidance and per-case DeT (slower)
    python -m moaw_core demo --source my_clip.mp4 --image my_frame.png --out out/mine

Each case (`moaw_core.data.demo_cases`) is a source video and an image to animate: camera motions transferred
to a different image, object motions transferred onto a restyled first frame of the source, or a user's pair.
For each seed the image-to-video generator animates the image plain and with each method (same noise): Moaw
injection of the tracker's cached block features, and on request MOFT guidance and DeT adapters
(`moaw_core.cli.demo_methods`). Every output is scored against the source with the fixed metrics
(`moaw_core.metrics.score_transfer`: the same dense DIS tracks for source and output, no step dropped, queries
in the source's moving object for object cases; docs/METRICS.md), beside controls scored the same way on the
same cases: uniform noise, the source's frozen first frame, the source played backwards, and the source itself.
Outputs in --out: `transfer_<case>.gif` (source | plain | each method, tracks drawn, first seed), `grid.png`,
`report.json` (per run, summary per row, paired differences against plain).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from moaw_core.cli import visualize as viz
from moaw_core.cli import demo_methods
from moaw_core.cli.demo_methods import animate, i2v_inputs  # noqa: F401 - i2v_inputs: used by scripts
from moaw_core.data.demo_cases import CASES, Case, build_case, user_case
from moaw_core.engine.bundle import Models, load_models, resolve_layers  # noqa: F401 - used by tune_demo
from moaw_core.engine.inject import InjectConfig
from moaw_core.engine.transfer import extract_tracker_features
from moaw_core.metrics import control_videos, frame0_fidelity, hf_energy, prepare_source
from moaw_core.metrics.report import MOTION_KEYS, score_against_source, summary_stats
from moaw_core.metrics.transfer import SourceMotion

MODELS = Path(__file__).resolve().parents[2] / "models"
GENERATOR = MODELS / "generators" / "moaw_tiny_wan_i2v.safetensors"
# The demo injects the step-0 tracker (the generator reading the source as its condition): measured on the tuning
# cases, the 837-step fine-tuned tracker transfers nothing (docs/DEMO.md).
TRACKER = MODELS / "trackers" / "moaw_tiny_wan_i2v_tracker_step0.safetensors"
CODEC = MODELS / "codecs" / "moaw_patch_pca_codec.safetensors"
METHODS = ("moaw", "moft", "det")          # method -> its row in the report: moaw -> "injected"
CONTROLS = ("noise", "frozen", "reversed")  # must score low (moaw_core.metrics.controls)
# every figure of a row: motion against the source (score_transfer), appearance against the image
SUMMARY_KEYS = ("motion_fidelity", "trajectory_shape", "field_agreement_moving", "field_agreement_frame",
                "relative_epe_moving", "gen_motion_moving", "frame0_psnr_db")


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
    methods: tuple[str, ...] = ("moaw",)  # rows beside plain: "moaw" (injection), "moft", "det" (METHODS)


def score_run(case: Case, src: SourceMotion, video) -> dict:
    """Motion (against the source, `score_against_source`) and appearance (frame 0 against the given image,
    high-frequency energy) of one output [T,H,W,3]."""
    s = score_against_source(src, video)
    f0 = frame0_fidelity(video, case.image)
    s["frame0_psnr_db"], s["frame0_ssim"] = f0["psnr_frame0"], f0["ssim_frame0"]
    s["hf_energy"] = hf_energy(video)
    return s


_KEYS = (*MOTION_KEYS, "frame0_psnr_db", "frame0_ssim", "hf_energy")


def source_motion(case: Case) -> SourceMotion:
    """The case's source prepared for scoring: queries and moving region from its object mask when it has one."""
    return prepare_source(case.source.numpy(), case.fg_mask)


def _cases(cfg: DemoConfig) -> list[Case]:
    if bool(cfg.source) != bool(cfg.image):
        raise ValueError(f"source/image: give both for a user's pair, got source={cfg.source!r} image={cfg.image!r}")
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown or not cfg.methods:
        raise ValueError(f"methods: expected one or more of {list(METHODS)}, got {list(cfg.methods)}")
    if cfg.source:
        return [user_case(cfg.source, cfg.image, cfg.frames, cfg.size)]
    known = [c[0] for c in CASES]
    unknown = [c for c in cfg.cases if c not in known]
    if unknown:
        raise ValueError(f"demo: unknown case(s) {unknown}; known: {known}")
    return [build_case(name, cfg.clip_seed + known.index(name), cfg.frames, cfg.size, cfg.speed) for name in cfg.cases]


def _prepare(models: Models, case: Case, cfg: DemoConfig, layers, inject, timings: dict) -> dict:
    """Per case, what each method needs before its generations: row -> `seed -> video [T,H,W,3]`."""
    gens = {}
    for method in cfg.methods:
        t0 = time.perf_counter()
        if method == "moaw":
            sampling = models.sampling(cfg.tracker_steps or None)
            feats, _ = extract_tracker_features(models.tracker, models.codec.encode(case.source), layers,
                                                sampling["steps"], sampling["shift"], seed=0,
                                                source=f"demo case {case.name}", init_noise=sampling["init_noise"])
            gens["injected"] = (lambda seed, f=feats: animate(models, case.image, case.source.shape[0], seed, cfg,
                                                              features=f, inject=inject))
        else:
            gens[method] = demo_methods.prepare(method, models, case, cfg, timings)
        timings.setdefault(f"prepare_{method}", 0.0)
        timings[f"prepare_{method}"] += time.perf_counter() - t0
    return gens


def run_demo(cfg: DemoConfig, progress=None) -> dict:
    """Run the demo; returns the report (also written to <out>/report.json)."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    cases = _cases(cfg)
    models = load_models(cfg.generator, cfg.tracker, cfg.codec)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    layers = resolve_layers(cfg.layers, models.tracker, cfg.tracker)
    inject = InjectConfig(layers=tuple(layers), strength=cfg.strength, mode=cfg.mode, start=cfg.start, end=cfg.end,
                          normalize=cfg.normalize, remove_content=cfg.remove_content)
    results, rows, timings = [], [], {"generate": {}}
    bar = tqdm(total=len(cases) * (1 + (1 + len(cfg.methods)) * len(cfg.seeds)), desc="moaw demo",
               disable=progress is False)
    for case in cases:
        src = source_motion(case)
        gens = {"plain": lambda seed: animate(models, case.image, case.source.shape[0], seed, cfg),
                **_prepare(models, case, cfg, layers, inject, timings)}
        bar.update(1)
        for seed in cfg.seeds:
            row = {"case": case.name, "kind": case.kind, "seed": seed}
            panels = []
            for name, make in gens.items():
                t0 = time.perf_counter()
                video = make(seed)
                timings["generate"][name] = timings["generate"].get(name, 0.0) + time.perf_counter() - t0
                s = score_run(case, src, video)
                row[name] = {k: s[k] for k in _KEYS}
                panels.append(viz.label(viz.draw_tracks(video, s["points"], s["visible"]), name))
                bar.update(1)
            for name, video in {**control_videos(case.source.numpy(), seed), "source": case.source.numpy()}.items():
                row[name] = {k: v for k, v in score_run(case, src, video).items() if k in _KEYS}
            if seed == cfg.seeds[0]:
                first = viz.label(viz.draw_tracks(case.source, src.points, src.visible), f"source {case.name}")
                viz.save_gif(viz.side_by_side([first, *panels]), out / f"transfer_{case.name}.gif")
                rows.extend([first, *panels])
            results.append(row)
    bar.close()
    viz.save_grid_png(rows, out / "grid.png")
    timings["total"] = time.perf_counter() - t_start
    report = _report(cfg, layers, cases, results, timings, list(gens))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _paired(runs: list[dict], metric: str, rows: list[str]) -> dict:
    """Mean / std of `metric` per row; for each generated row, its paired difference against plain."""
    out = {}
    plain = [r["plain"][metric] for r in runs]
    for name in rows:
        vals = [r[name][metric] for r in runs]
        out[name] = summary_stats(vals)
        if name in ("plain", "source", *CONTROLS):
            continue
        ok = [(a, b) for a, b in zip(plain, vals) if a == a and b == b]
        out[f"{name}_minus_plain"] = summary_stats([b - a for a, b in ok]) if ok else None
        out[f"{name}_higher"] = int(sum(b > a for a, b in ok))
    return out


def _report(cfg: DemoConfig, layers, cases, results, timings: dict, generated: list[str]) -> dict:
    rows = [*generated, *CONTROLS, "source"]
    summary = {m: _paired(results, m, rows) for m in SUMMARY_KEYS}
    for name in rows[1:]:
        summary[f"hf_energy_ratio_{name}_over_plain"] = summary_stats(
            [r[name]["hf_energy"] / max(r["plain"]["hf_energy"], 1e-12) for r in results])
    groups = {}
    for r in results:
        groups.setdefault(("case", r["case"]), []).append(r)
        groups.setdefault(("kind", r["kind"]), []).append(r)
    per = {f"{k}:{name}": {m: _paired(rs, m, rows) for m in ("motion_fidelity", "field_agreement_moving")}
           for (k, name), rs in groups.items()}
    settings = asdict(cfg)
    notes = [c.note for c in cases if c.note]
    gen_t = timings.pop("generate")
    timings_s = {"generate_total": sum(gen_t.values()), "generate_per_row": gen_t,
                 **{k: v for k, v in timings.items() if not isinstance(v, dict)},
                 "generations": len(generated) * len(results)}
    extra = {k: v for k, v in timings.items() if isinstance(v, dict)}  # per-method details (e.g. DeT training)
    return {"summary": summary, "rows": rows, "per_group": per, "runs": results, "layers": list(layers),
            "settings": settings, "notes": notes, "timings_s": timings_s, "methods": extra,
            "metric": "moaw_core.metrics.score_transfer (dense DIS tracks, no step dropped; docs/METRICS.md)"}


LABELS = {"plain": "plain", "injected": "Moaw injection", "moft": "MOFT guidance", "det": "DeT adapters",
          "noise": "control: uniform noise", "frozen": "control: frozen frame 0", "reversed": "control: reversed",
          "source": "control: source itself"}


def table(report: dict) -> str:
    """The summary as a markdown table: one line per row (method or control), mean +- std over cases x seeds,
    and each method's paired difference against plain."""
    s = report["summary"]
    cols = (("MF", "motion_fidelity"), ("TS", "trajectory_shape"), ("FA moving", "field_agreement_moving"),
            ("FA frame", "field_agreement_frame"), ("rel. EPE moving", "relative_epe_moving"),
            ("motion px/f", "gen_motion_moving"), ("PSNR0 dB", "frame0_psnr_db"))
    lines = ["| row | n | " + " | ".join(c for c, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name in report["rows"]:
        cells = []
        for _, key in cols:
            st, d = s[key][name], s[key].get(f"{name}_minus_plain")
            cell = f"{st['mean']:.3f} ± {st['std']:.3f}" if key != "frame0_psnr_db" else f"{st['mean']:.1f}"
            if d and key != "frame0_psnr_db":
                cell += f" ({d['mean']:+.3f})"
            cells.append(cell)
        lines.append(f"| {LABELS.get(name, name)} | {s['motion_fidelity'][name]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = DemoConfig()
    p.add_argument("--out", default=d.out, help="output folder")
    for name in ("generator", "tracker", "codec"):
        p.add_argument(f"--{name}", default=getattr(d, name), help=f"{name} model file")
    p.add_argument("--layers", default=d.layers, help="layer spec ('' = the selection stored next to the tracker)")
    p.add_argument("--cases", nargs="+", default=list(d.cases), help=f"cases from {[c[0] for c in CASES]}")
    p.add_argument("--methods", default=",".join(d.methods),
                   help=f"comma-separated rows beside plain, from {','.join(METHODS)} (moft and det are slower: "
                        f"README, docs/DEMO.md)")
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


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    fields = DemoConfig.__dataclass_fields__
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items() if k in fields}
    if isinstance(kw.get("methods"), str):
        kw["methods"] = tuple(m.strip() for m in kw["methods"].split(",") if m.strip())
    return DemoConfig(**kw)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    report = run_demo(cfg)
    print(table(report), end="")
    s = report["summary"]
    print("n = cases x seeds; (+x) = paired difference against plain; MF motion fidelity, TS trajectory shape, "
          "FA field agreement, rel. EPE relative end-point error (docs/METRICS.md)")
    for name in report["rows"][1:len(report["rows"]) - len(CONTROLS) - 1]:
        print(f"HF energy ratio {name} / plain {s[f'hf_energy_ratio_{name}_over_plain']['mean']:.2f}")
    print(f"{report['timings_s']['total']:.0f} s; outputs in {cfg.out}")
    for note in report["notes"]:
        print("note:", note)
    return 0
