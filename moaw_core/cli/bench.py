"""MTBench harness (DeT, Shi et al.): difficulty by trajectory clusters, and motion transfer scored per case.

    python -m moaw_core bench --cases ../shared/data/mtbench --out out/mtbench

- `trajectory_clusters` / `difficulty`: DeT's difficulty measure (k-means on normalised trajectories, k chosen
  by silhouette; few clusters = easy, ~5 = medium, >= ~7 = hard).
- `run_mtbench`: for each case folder (`videos/<case>.mp4`, `masks/<case>/*.png`, `trajectories/<case>.pth`,
  `prompts.txt`, `eval_prompts.txt`), the tracker's block features of the source are injected while the
  generator samples; each seed runs without and with injection (same noise), and both are scored against the
  case's source clip with the fixed metrics (`moaw_core.metrics.score_transfer`: the same dense DIS tracks on
  both, queries on the first-frame mask; motion fidelity, trajectory shape, field agreement), beside the controls
  scored the same way (uniform noise, frozen first frame, reversed source). The case's pseudo-GT trajectories
  give its difficulty. Writes `mtbench.json` and `mtbench.md`.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from moaw_core.cli import CODEC, MODELS
from moaw_core.cli.config_args import add_config_arguments, config_from_args
from moaw_core.data.mtbench import find_cases
from moaw_core.engine.inject import MODES
from moaw_core.engine.bundle import load_models, resolve_layers
from moaw_core.metrics.report import score_against_source, summary_stats
from moaw_core.metrics import control_videos, prepare_source

# MTBench runs the text-to-video pair (no first frame is given): the first bundled generator and its tracker.
GENERATOR = MODELS / "generators" / "moaw_tiny_wan_generator.safetensors"
TRACKER = MODELS / "trackers" / "moaw_tiny_wan_tracker.safetensors"

DIFFICULTIES = ("easy", "medium", "hard")
EASY_MAX_K = 3   # k <= 3: easy ("low" in DeT)
HARD_MIN_K = 7   # k >= 7: hard (DeT: ">= ~7"); 4..6: medium (DeT: "~5")
TEXT_NOTE = ("generator takes no text (transfer.generate samples with the null-text condition): one run per "
             "seed; the eval prompts are recorded per case but unused")


# ----------------------------------------------------------------------------- difficulty
def _as_trajectories(trajectories) -> np.ndarray:
    t = trajectories.detach().cpu().numpy() if torch.is_tensor(trajectories) else np.asarray(trajectories)
    if t.ndim != 3 or t.shape[-1] not in (2, 3) or t.shape[0] < 2 or t.shape[1] < 1:
        raise ValueError(f"trajectories: expected [T>=2, N>=1, 2 or 3] (x/W, y/H[, visibility]), "
                         f"got shape {tuple(t.shape)}")
    t = t.astype(np.float64)
    if not np.isfinite(t).all():
        raise ValueError("trajectories: contains NaN or inf")
    if np.abs(t[..., :2]).max() > 4.0:
        raise ValueError("trajectories: expected normalised coordinates (x/W, y/H) like MTBench files, got "
                         "values beyond 4 (pixels?); divide x by W and y by H first")
    return t


def _displacement_features(t: np.ndarray, query_frame: int) -> np.ndarray:
    """[T, N, 2|3] -> [N', 2 (T - q)] displacements from the query frame over frames t >= q. Invisible frames
    are filled by linear interpolation between the track's visible frames (held at the ends); tracks never
    visible from q on are dropped."""
    xy = t[query_frame:, :, :2]
    vis = t[query_frame:, :, 2] > 0.5 if t.shape[-1] == 3 else np.ones(xy.shape[:2], bool)
    frames = np.arange(xy.shape[0])
    rows = []
    for n in np.nonzero(vis.any(0))[0]:
        f = frames[vis[:, n]]
        p = np.stack([np.interp(frames, f, xy[vis[:, n], n, c]) for c in (0, 1)], axis=-1)
        rows.append((p - p[:1]).ravel())
    if not rows:
        raise ValueError("trajectories: no track is visible at or after the query frame")
    return np.stack(rows)


def _kmeans(X: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 8, iters: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding, best of n_init by inertia. X [N, D] -> labels [N]."""
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        centres = [X[rng.integers(len(X))]]
        for _ in range(1, k):
            d2 = ((X[:, None] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
            prob = d2 / d2.sum() if d2.sum() > 0 else np.full(len(X), 1.0 / len(X))
            centres.append(X[rng.choice(len(X), p=prob)])
        c, labels = np.asarray(centres), None
        for _ in range(iters):
            d2 = ((X[:, None] - c[None]) ** 2).sum(-1)
            new = d2.argmin(1)
            for j in range(k):  # an empty cluster takes the point farthest from its centre
                if not (new == j).any():
                    far = d2[np.arange(len(X)), new].argmax()
                    new[far] = j
                    d2[far] = 0.0
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            c = np.stack([X[labels == j].mean(0) for j in range(k)])
        inertia = float(((X - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels.copy(), inertia
    return best


def trajectory_clusters(trajectories, k_max: int = 10, seed: int = 0, query_frame: int = 0,
                        min_spread: float = 0.01, min_silhouette: float = 0.25) -> tuple[int, np.ndarray]:
    """Number of motion clusters among a video's point trajectories (DeT's MTBench difficulty measure).

    Each track becomes its displacement from the query frame at every frame t >= query_frame (normalised
    units, x/W and y/H; invisible frames linearly interpolated from the visible ones). k-means (numpy,
    k-means++ seeding, best of 8 restarts, `np.random.default_rng(seed)`) runs for k = 2..k_max and k is
    the one with the highest mean silhouette (`scoring.silhouette` on all components = Euclidean).
    k = 1 (near-uniform motion) when either
      - the RMS distance of the tracks to their mean trajectory is below `min_spread` (1 % of the frame
        by default: everything moves together, as under a pure camera pan), or
      - the best silhouette is below `min_silhouette` (0.25: Kaufman & Rousseeuw's "no substantial
        structure"; the tracks vary but do not form groups).

    Args:
        trajectories: [T, N, 2] or [T, N, 3] (x/W, y/H[, visibility > 0.5]), e.g. MTBench's .pth (query 1).
        k_max: largest k tried (capped at the number of distinct tracks - 1). seed: k-means seed.
        query_frame: frame the tracks were queried at (MTBench: 1); earlier frames are ignored.
        min_spread, min_silhouette: the k = 1 rules above.
    Returns:
        (k, labels [N'] int64 in 0..k-1, one per track visible at or after the query frame).
    """
    from moaw_core.selection.scoring import silhouette

    t = _as_trajectories(trajectories)
    if int(k_max) < 1:
        raise ValueError(f"k_max: expected >= 1, got {k_max}")
    if not 0 <= int(query_frame) < t.shape[0] - 1:
        raise ValueError(f"query_frame: expected 0..{t.shape[0] - 2} for {t.shape[0]} frames, got {query_frame}")
    X = _displacement_features(t, int(query_frame))
    ones = np.zeros(len(X), np.int64)
    spread = float(np.sqrt(((X - X.mean(0)) ** 2).reshape(len(X), -1, 2).sum(-1).mean()))
    k_hi = min(int(k_max), len(np.unique(X.round(12), axis=0)) - 1)
    if spread < min_spread or k_hi < 2:
        return 1, ones
    rng = np.random.default_rng(seed)
    best_k, best_s, best_labels = 1, -np.inf, ones
    for k in range(2, k_hi + 1):
        labels = _kmeans(X, k, rng)
        s = silhouette(X, labels, n_components=X.shape[1])
        if s > best_s + 1e-9:
            best_k, best_s, best_labels = k, s, labels
    if best_s < min_silhouette:
        return 1, ones
    return best_k, best_labels.astype(np.int64)


def difficulty(k: int) -> str:
    """DeT difficulty from the cluster count: k <= 3 "easy", 4..6 "medium", >= 7 "hard"."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: expected an int >= 1, got {k!r}")
    return "easy" if k <= EASY_MAX_K else "hard" if k >= HARD_MIN_K else "medium"


# ----------------------------------------------------------------------------- cases
def sample_frames(num_frames: int, frames: int, query_frame: int = 1) -> np.ndarray:
    """`frames` indices evenly spaced (rounded) from the query frame to the last frame, so the short clip the
    tiny models take spans the whole motion, starting where the pseudo-GT tracks were queried."""
    if int(frames) < 2 or int(frames) > num_frames - query_frame:
        raise ValueError(f"frames: expected 2..{num_frames - query_frame} (video has {num_frames} frames, "
                         f"query frame {query_frame}), got {frames}")
    return np.round(np.linspace(query_frame, num_frames - 1, int(frames))).astype(np.int64)


def _resize(video: torch.Tensor, size: int, nearest: bool = False) -> torch.Tensor:
    import cv2
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return torch.from_numpy(np.stack([cv2.resize(f, (size, size), interpolation=interp)
                                      for f in video.numpy().astype(np.float32)]))


# ----------------------------------------------------------------------------- harness
@dataclass(frozen=True)
class BenchSettings:
    """Sampling, injection and scoring settings shared by every case (defaults: the T2V pair's tuned settings, docs/DEMO.md history)."""

    tracker_steps: int = 0         # tracker sampling steps (0 = the tracker file's schedule)
    gen_steps: int = 20            # generator sampling steps
    shift: float = 1.0             # flow-matching schedule shift (tracker and generator)
    strength: float = 0.5          # injection strength
    start: float = 0.0             # injection window, fraction of the generator's steps
    end: float = 0.5
    mode: str = "add"              # "add" | "replace" | "blend" (moaw_core.engine.inject)
    normalize: bool = True
    remove_content: bool = True         # MOFT content removal: inject the features' change over time
    grid: int = 8                  # query grid (grid x grid) over the box of the first-frame mask, points on the mask
    k_max: int = 10                # largest cluster count tried for the difficulty


def _prepare_case(case_dir: Path, frames: int, size: int, s: BenchSettings) -> dict:
    """Load one case -> resized clip, its source motion for scoring (`metrics.prepare_source`) and difficulty."""
    from moaw_core.data.real import load_mtbench_case

    case = load_mtbench_case(case_dir)
    k, _ = trajectory_clusters(case.trajectories, s.k_max, seed=0, query_frame=case.query_frame)
    idx = sample_frames(case.video.shape[0], frames, case.query_frame)
    mask = (_resize(case.masks[:1].float(), size, nearest=True)[0] > 0.5).numpy()  # first annotated frame
    video = _resize(case.video[torch.from_numpy(idx)], size).clamp(0, 1)
    src = prepare_source(video.numpy(), mask if mask.any() else None, grid=s.grid)
    return {"name": case.name, "k": k, "difficulty": difficulty(k), "frames": idx.tolist(), "video": video,
            "src": src, "query_region": src.query_region, "num_src_tracks": int(case.trajectories.shape[1]),
            "eval_prompts": case.eval_prompts}


def _run_case(c: dict, models, layers, inject, seeds, s: BenchSettings, bar, timings: dict) -> list[dict]:
    from moaw_core.engine.transfer import extract_tracker_features, generate

    generator, tracker, codec = models.generator, models.tracker, models.codec
    sampling = models.sampling(s.tracker_steps or None)
    t0 = time.perf_counter()
    feats, _ = extract_tracker_features(tracker, codec.encode(c["video"]), layers, sampling["steps"],
                                        sampling["shift"], seed=0, source=f"mtbench {c['name']}",
                                        init_noise=sampling["init_noise"])
    timings["extract"] += time.perf_counter() - t0
    bar.update(1)
    T, H, W, _ = c["video"].shape
    shape = (1, codec.latent_channels, T, H // codec.patch, W // codec.patch)
    runs = []
    for seed in seeds:
        row = {"case": c["name"], "difficulty": c["difficulty"], "seed": int(seed)}
        for kind in ("plain", "injected"):
            t0 = time.perf_counter()
            extra = {"features": feats, "inject": inject} if kind == "injected" else {}
            lat = generate(generator, shape, seed=int(seed), steps=s.gen_steps, shift=s.shift, **extra)
            timings["generate"] += time.perf_counter() - t0
            video = codec.decode(lat)[0].clamp(0, 1)
            row[kind] = _scores(c["src"], video)
            bar.update(1)
        for kind, video in control_videos(c["video"].numpy(), int(seed)).items():
            row[kind] = _scores(c["src"], video)
        runs.append(row)
    return runs


ROWS = ("plain", "injected", "noise", "frozen", "reversed")  # generated rows, then the controls
METRICS = ("motion_fidelity", "trajectory_shape", "field_agreement_moving", "field_agreement_frame")


def _scores(src, video) -> dict:
    s = score_against_source(src, video)
    return {key: s[key] for key in METRICS}


def _summary(cases: list[dict], runs: list[dict]) -> dict:
    out = {}
    for group in (*DIFFICULTIES, "all"):
        rs = [r for r in runs if group in ("all", r["difficulty"])]
        d = {"cases": sum(group in ("all", c["difficulty"]) for c in cases), "runs": len(rs)}
        for metric in METRICS:
            if not rs:
                d[metric] = None
                continue
            vals = {kind: [r[kind][metric] for r in rs] for kind in ROWS}
            d[metric] = {kind: summary_stats(v) for kind, v in vals.items()}
            d[metric]["injected_minus_plain"] = summary_stats([b - a for a, b in zip(vals["plain"], vals["injected"])])
        out[group] = d
    return out


def markdown_table(summary: dict) -> str:
    """The summary as markdown: difficulty | cases | row | MF | TS | FA moving | FA frame (mean ± std); difficulties
    without a case are left out."""
    lines = ["| difficulty | cases | row | MF | TS | FA moving | FA frame |", "|---|---|---|---|---|---|---|"]
    for group, d in summary.items():
        for kind in ROWS if d["runs"] else ():
            cells = []
            for metric in METRICS:
                st = d[metric][kind] if d[metric] else None
                cells.append(f"{st['mean']:.3f} ± {st['std']:.3f}" if st else "–")
            label = kind if kind in ("plain", "injected") else f"control: {kind}"
            lines.append(f"| {group} | {d['cases']} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_mtbench(cases_dir, generator_path=GENERATOR, tracker_path=TRACKER, codec_path=CODEC, seeds=(0,),
                frames: int = 8, size: int = 64, layers: str | None = None,
                settings: BenchSettings = BenchSettings(), out_dir="out/mtbench", progress: bool = True) -> dict:
    """Motion transfer on every MTBench case in `cases_dir`, scored and aggregated by difficulty.

    Per case: `frames` frames evenly spaced from the query frame (1) to the last (`sample_frames`), resized
    to `size` x `size` (the tiny models' resolution; aspect ratio not kept), encoded with the codec; the
    tracker's `layers` features are captured once, then each seed generates without and with injection
    (same noise). Both are scored against the resized clip with `metrics.score_transfer` (dense DIS tracks from a
    `grid` x `grid` grid over the first-frame mask's box, points on the mask, the same tracker on the clip and
    each output), beside the noise / frozen / reversed controls of the clip. Difficulty: `trajectory_clusters` on
    the full-length pseudo-GT trajectories. The generator takes no text, so one run per seed.

    Args:
        cases_dir: folder of case folders (MTBench layout) or one case folder.
        generator_path, tracker_path, codec_path: model files (default: the bundled tiny models).
        seeds: generation seeds. frames: clip length (>= 2). size: square side, a multiple of the codec patch.
        layers: layer spec ("" / None = the selection stored next to the tracker, else every block).
        settings: `BenchSettings`. out_dir: output folder.
    Returns:
        The report written to `out_dir/mtbench.json` (summary per difficulty and overall, per case, per run);
        `out_dir/mtbench.md` holds `markdown_table(summary)`.
    """
    from tqdm.auto import tqdm

    from moaw_core.engine.inject import InjectConfig

    t_start = time.perf_counter()
    case_dirs = find_cases(cases_dir)
    seeds = tuple(int(x) for x in seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    if int(frames) < 2:
        raise ValueError(f"frames: expected >= 2, got {frames}")
    models = load_models(generator_path, tracker_path, codec_path, who="mtbench")
    patch = models.codec.patch
    if int(size) < patch or int(size) % patch:
        raise ValueError(f"size: expected a positive multiple of the codec patch {patch}, got {size}")
    torch.manual_seed(0)
    layer_names = resolve_layers(layers or "", models.tracker, tracker_path)
    s = settings
    inject = InjectConfig(layers=tuple(layer_names), strength=s.strength, mode=s.mode, start=s.start, end=s.end,
                          normalize=s.normalize, remove_content=s.remove_content)
    timings = {"extract": 0.0, "generate": 0.0}
    cases, runs = [], []
    bar = tqdm(total=len(case_dirs) * (1 + 2 * len(seeds)), desc="moaw mtbench", disable=not progress)
    for d in case_dirs:
        c = _prepare_case(d, int(frames), int(size), s)
        runs.extend(_run_case(c, models, layer_names, inject, seeds, s, bar, timings))
        cases.append({k: c[k] for k in ("name", "k", "difficulty", "frames", "query_region", "eval_prompts",
                                        "num_src_tracks")} | {"num_points": int(len(c["src"].queries))})
    bar.close()
    settings_out = asdict(s) | {"cases_dir": str(cases_dir), "generator": str(generator_path),
                                "tracker": str(tracker_path), "codec": str(codec_path), "seeds": list(seeds),
                                "frames": int(frames), "size": int(size), "layers": layers or ""}
    timings["total"] = time.perf_counter() - t_start
    return _write_report(Path(out_dir), cases, runs, layer_names, settings_out, timings)


def _write_report(out: Path, cases, runs, layers, settings: dict, timings: dict) -> dict:
    summary = _summary(cases, runs)
    report = {"summary": summary, "cases": cases, "runs": runs, "layers": layers, "text_conditioning": TEXT_NOTE,
              "settings": settings,
              "timings_s": {"extract_total": timings["extract"], "generate_total": timings["generate"],
                            "total": timings["total"], "generations": 2 * len(runs)}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "mtbench.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "mtbench.md").write_text("# MTBench (Moaw injection vs no injection)\n\n" + markdown_table(summary))
    return report


# ----------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", required=True, help="MTBench folder (case folders) or one case folder")
    p.add_argument("--out", default="out/mtbench", help="output folder (mtbench.json, mtbench.md)")
    for name, default in (("generator", GENERATOR), ("tracker", TRACKER), ("codec", CODEC)):
        p.add_argument(f"--{name}", default=str(default), help=f"{name} model file")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--frames", type=int, default=8, help="frames per clip, from the query frame to the end")
    p.add_argument("--size", type=int, default=64, help="square clip side in pixels (the model's resolution)")
    p.add_argument("--layers", default="", help="layer spec ('' = the tracker's stored selection, else every block)")
    add_config_arguments(p, BenchSettings, choices={"mode": MODES}, help={
        "normalize": "rescale features per channel to the generator's statistics (as the demo)",
        "tracker_steps": "tracker sampling steps (0 = the tracker file's schedule)"})
    p.add_argument("--difficulty-only", action="store_true", help="only print (case, k, difficulty)")


def main(args: argparse.Namespace) -> int:
    if args.difficulty_only:
        from moaw_core.data.real import load_mtbench_case

        for d in find_cases(args.cases):
            case = load_mtbench_case(d)
            k, _ = trajectory_clusters(case.trajectories, args.k_max, query_frame=case.query_frame)
            print(f"{case.name}: k={k} ({difficulty(k)})")
        return 0
    settings = config_from_args(BenchSettings, args)
    report = run_mtbench(args.cases, args.generator, args.tracker, args.codec, args.seeds, args.frames, args.size,
                         args.layers, settings, args.out)
    print(markdown_table(report["summary"]), end="")
    print(f"outputs in {args.out}")
    return 0
