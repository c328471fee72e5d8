"""CLI verb `det`: train DeT adapters on one source video, or sample with trained adapters.

    python -m moaw_core det train --synthetic object_right --out out/det/object_right.safetensors
    python -m moaw_core det train --video clip.mp4 --steps 500 --checkpoint-every 50 --resume
    python -m moaw_core det apply --adapters out/det/object_right.safetensors --out out/det --seeds 0 1
    accelerate launch -m moaw_core det train ...     # several GPUs: each draws its own noise level, grads averaged

The generator is a Moaw model file (diffusers backbone; default the bundled tiny Wan) and the latents come from the
bundled patch codec; `moaw_core.det.pipeline` works with any diffusers Wan / CogVideoX / HunyuanVideo backbone.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from moaw_core.det.train import DeTTrainConfig

_MODELS = Path(__file__).resolve().parents[1].parent / "models"
GENERATOR = _MODELS / "generators" / "moaw_tiny_wan_generator.safetensors"
CODEC = _MODELS / "codecs" / "moaw_patch_pca_codec.safetensors"
SYNTHETIC = {"object_right": ("static", "right"), "object_down": ("static", "down"), "pan_left": ("pan_left", "none")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="train adapters on one source video")
    a = sub.add_parser("apply", help="sample plain and with DeT adapters (same seeds), write a GIF and a report")
    for q in (t, a):
        q.add_argument("--generator", default=str(GENERATOR), help="Moaw generator file (diffusers backbone)")
        q.add_argument("--codec", default=str(CODEC), help="latent codec file")
        q.add_argument("--shift", type=float, default=1.0, help="flow time shift of the generator's schedule")
        src = q.add_mutually_exclusive_group(required=q is t)
        src.add_argument("--video", help="source video file or folder of frames")
        src.add_argument("--synthetic", help=f"a named synthetic source clip: {', '.join(SYNTHETIC)}")
        q.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
        q.add_argument("--frames", type=int, default=8)
    d = DeTTrainConfig()
    t.add_argument("--out", default="out/det/adapters.safetensors", help="adapter file to write")
    t.add_argument("--steps", type=int, default=d.steps)
    t.add_argument("--lr", type=float, default=d.lr)
    t.add_argument("--track-weight", type=float, default=d.track_weight)
    t.add_argument("--tracker", default="lk", choices=("lk", "dis", "cotracker", "none"))
    t.add_argument("--points", type=int, default=100)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--checkpoint-every", type=int, default=0, help="save a resumable file every N steps")
    t.add_argument("--resume", action="store_true", help="continue from --out when it exists")
    a.add_argument("--adapters", required=True, help="a DeT adapter file")
    a.add_argument("--out", default="out/det", help="output folder")
    a.add_argument("--seeds", type=int, nargs="+", default=[0])
    a.add_argument("--gen-steps", type=int, default=20)
    a.add_argument("--fraction", type=float, default=0.35, help="share of blocks (first ones) given adapters")
    a.add_argument("--strength", type=float, default=1.0)


def _video(args):
    if args.synthetic:
        from moaw_core.data.sources import synthetic_source

        if args.synthetic not in SYNTHETIC:
            raise ValueError(f"--synthetic: expected one of {list(SYNTHETIC)}, got {args.synthetic!r}")
        camera, objects = SYNTHETIC[args.synthetic]
        h, w = args.size
        return synthetic_source(100_000, frames=args.frames, height=h, width=w, camera=camera, objects=objects).video
    from moaw_core.data.real import load_video

    return load_video(args.video, max_frames=args.frames, size=tuple(args.size))


def _models(args):
    from moaw_core.engine.checkpoint import load_backbone
    from moaw_core.tracking.codecs import PatchPCACodec

    for name in ("generator", "codec"):
        if not Path(getattr(args, name)).is_file():
            raise FileNotFoundError(f"--{name}: no such file {getattr(args, name)}")
    return load_backbone(args.generator, "generator")[0], PatchPCACodec.load(args.codec)


def train(args) -> int:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from moaw_core.det.files import TrainedDeT, load_adapters, save_adapters
    from moaw_core.det.pipeline import adapters_for, train_on_video

    acc = Accelerator(cpu=not torch.cuda.is_available())
    generator, codec = _models(args)
    generator.to(acc.device)
    video = _video(args).to(torch.float32)
    out = Path(args.out)
    cfg = DeTTrainConfig(steps=args.steps, lr=args.lr, track_weight=args.track_weight, seed=args.seed)
    start = load_adapters(out) if args.resume and out.is_file() else TrainedDeT(adapters_for(generator, seed=cfg.seed))
    bar = tqdm(total=cfg.steps, initial=start.state.step, desc="DeT", disable=not acc.is_main_process)

    def progress(step, total, rec):
        bar.update(1)
        bar.set_postfix(loss=f"{rec['loss']:.4f}")

    def checkpoint(state):  # the adapters are trained in place: start.adapters is the live object
        if acc.is_main_process:
            save_adapters(out, start.adapters, {**start.info, "partial": True}, state)

    trained = train_on_video(generator, codec, video, cfg, args.tracker, args.points, shift=args.shift,
                             resume=start, progress=progress, accelerator=acc, on_checkpoint=checkpoint,
                             checkpoint_every=args.checkpoint_every, source=args.video or f"synthetic:{args.synthetic}")
    bar.close()
    if acc.is_main_process:
        trained.save(out)
        last = trained.state.losses[-1] if trained.state.losses else {}
        print(f"wrote {out}: {trained.state.step} steps, {trained.info['seconds']:.1f} s, last loss "
              f"{last.get('loss', float('nan')):.4f}")
    return 0


def apply(args) -> int:
    from moaw_core.cli import visualize as viz
    from moaw_core.metrics.report import score_against_source
    from moaw_core.det.files import load_adapters
    from moaw_core.det.pipeline import generate_det
    from moaw_core.metrics import prepare_source

    generator, codec = _models(args)
    trained = load_adapters(args.adapters)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h, w = args.size
    shape = (1, codec.latent_channels, args.frames, h // codec.patch, w // codec.patch)
    source = _video(args) if (args.video or args.synthetic) else None
    src = prepare_source(source.numpy()) if source is not None else None
    report = {"adapters": str(args.adapters), "fraction": args.fraction, "strength": args.strength, "runs": []}
    for seed in args.seeds:
        panels = [viz.label(viz.draw_tracks(source, src.points, src.visible), "source")] if src is not None else []
        row = {"seed": seed}
        for kind, a in (("plain", None), ("det", trained.adapters)):
            lat = generate_det(generator, a, shape, seed=seed, steps=args.gen_steps, shift=args.shift,
                               fraction=args.fraction, scale=args.strength)
            video = codec.decode(lat)[0].clamp(0, 1)
            if src is not None:
                s = score_against_source(src, video)
                row[kind] = {k: s[k] for k in ("motion_fidelity", "trajectory_shape", "field_agreement_moving")}
                panels.append(viz.label(viz.draw_tracks(video, s["points"], s["visible"]), kind))
            else:
                panels.append(viz.label(viz.to_uint8(video, 4), kind))
        viz.save_gif(viz.side_by_side(panels), out / f"det_seed{seed}.gif")
        report["runs"].append(row)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {len(args.seeds)} GIF(s) and report.json to {out}")
    return 0


def main(args: argparse.Namespace) -> int:
    return train(args) if args.action == "train" else apply(args)
