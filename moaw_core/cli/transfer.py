"""CLI verb `transfer`: Moaw motion transfer on a diffusers pipeline with real weights (Wan 2.1 / 2.2 T2V).

    python -m moaw_core transfer --pipeline /models/Wan2.1-T2V-1.3B-Diffusers --source clip.mp4 \\
        --prompt "a red fox running through snow" --out out/transfer [--tracker my_wan_tracker.safetensors]

1. The source video (file or folder of frames) is resized to --height x --width, --frames frames are taken
   evenly (Wan needs 4k+1), encoded by the pipeline's VAE and normalised as the pipeline does.
2. Features: training-free by default (the pipeline's own transformer on the source latents noised to each
   sigma of the sampling schedule, with the source prompt's embeddings), or a Moaw tracker file for this
   architecture (`--tracker`; its recorded schedule; its blocks must match the transformer's fingerprint).
3. The prompt is generated twice with the same seed through the pipeline's own loop and scheduler: plain,
   and with the features injected (`InjectHook` on the transformer's blocks; the step index follows
   `callback_on_step_end`; with CFG only the conditional pass is injected unless --branch both).
4. Written to --out: `transfer.gif` (source | plain | injected, the scorer's DIS tracks drawn), `plain.gif`,
   `injected.gif`, `report.json` (motion fidelity and trajectory shape against the source, timings,
   settings); `--save-features` also writes the features (safetensors).

`--method moft` replaces steps 2-3 by MOFT guidance (`moaw_core.moft`): the source latent noised to --moft-sigma,
one forward, block --moft-layer (default the middle block), content removed, channels from --moft-channels (a
`.moft.json`) or the source's own SVD; the prompt is generated plain and with the latents guided toward the
source's MOFT at the --moft-start..--moft-end steps (official 3-11 of 25), written as `moft.gif`.

Other families (CogVideoX, HunyuanVideo, SVD) have adapters and run through the ComfyUI nodes; this CLI
refuses them with a clear message until their pipelines are wired here.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from moaw_core.engine.adapters import check_compatible, detect
from moaw_core.engine.hooks import HookContext, InjectHook, attach
from moaw_core.cli.config_args import add_config_arguments, config_from_args
from moaw_core.cli.limits import activation_bytes, check_fits, video_bytes
from moaw_core.engine.inject import InjectConfig, active_steps, step_active


@dataclass(frozen=True)
class TransferConfig:
    pipeline: str = ""
    source: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    source_prompt: str = ""             # prompt for the training-free capture ("" = unconditional)
    tracker: str = ""                   # Moaw tracker file ("" = training-free features)
    out: str = "out/transfer"
    layers: str = ""                    # layer spec ("" = the middle third of the blocks)
    frames: int = 33
    height: int = 480
    width: int = 832
    steps: int = 30
    guidance: float = 5.0
    seed: int = 0
    strength: float = 0.5
    start: float = 0.0
    end: float = 0.5
    mode: str = "add"
    normalize: bool = True
    remove_content: bool = True
    branch: str = "cond"
    device: str = "auto"                # auto | cpu | cuda
    dtype: str = "auto"                 # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    grid: int = 10                      # query grid of the scores (metrics.score_transfer)
    save_features: bool = False
    method: str = "moaw"                # moaw (feature injection) | moft (MOFT latent guidance)
    moft_layer: str = ""                # MOFT feature block ("" = the middle block)
    moft_sigma: float = 0.2             # noise level of the source pass
    moft_channels: str = ""             # a <model>.moft.json file ("" = the source's own SVD channels, DiT port)
    moft_weight: float = 8.0
    moft_step_size: float = 0.5
    moft_start: float = 0.12            # official: steps 3-11 of 25
    moft_end: float = 0.48
    moft_repeats: int = 2
    moft_loss: str = "mse"


_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _device_dtype(cfg: TransferConfig) -> tuple[str, torch.dtype]:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    if cfg.dtype == "auto":
        return device, torch.bfloat16 if device.startswith("cuda") else torch.float32
    if cfg.dtype not in _DTYPES:
        raise ValueError(f"dtype: expected auto or one of {tuple(_DTYPES)}, got {cfg.dtype!r}")
    return device, _DTYPES[cfg.dtype]


def check_config(cfg: TransferConfig) -> None:
    if not cfg.pipeline or not Path(cfg.pipeline).is_dir():
        raise FileNotFoundError(f"pipeline: expected a diffusers pipeline folder (model_index.json), got {cfg.pipeline!r}")
    if not (Path(cfg.pipeline) / "model_index.json").is_file():
        raise ValueError(f"pipeline: {cfg.pipeline} has no model_index.json; save it with save_pretrained or "
                         "download the *-Diffusers variant of the model")
    if not cfg.source or not Path(cfg.source).exists():
        raise FileNotFoundError(f"source: no such video file or frames folder {cfg.source!r}")
    if (cfg.frames - 1) % 4 or cfg.frames < 1:
        raise ValueError(f"frames: Wan needs 4k+1 frames (5, 9, ..., 33, 81), got {cfg.frames}")
    if cfg.height % 16 or cfg.width % 16 or min(cfg.height, cfg.width) < 16:
        raise ValueError(f"height/width: expected multiples of 16, got {cfg.height}x{cfg.width}")
    if cfg.steps < 1:
        raise ValueError(f"steps: expected >= 1, got {cfg.steps}")
    if cfg.tracker and not Path(cfg.tracker).is_file():
        raise FileNotFoundError(f"tracker: no such file {cfg.tracker!r}")
    if cfg.method not in ("moaw", "moft"):
        raise ValueError(f"method: expected 'moaw' or 'moft', got {cfg.method!r}")
    if cfg.method == "moft":
        if cfg.tracker:
            raise ValueError("method moft is training-free: it takes no --tracker")
        if cfg.moft_channels and not Path(cfg.moft_channels).is_file():
            raise FileNotFoundError(f"moft_channels: no such file {cfg.moft_channels!r}")
        moft_config(cfg).guided_steps(cfg.steps)  # window / loss / repeats checked before loading anything
    if cfg.method == "moaw":
        InjectConfig(strength=cfg.strength, mode=cfg.mode, start=cfg.start, end=cfg.end, branch=cfg.branch)  # checks
    if cfg.method == "moaw" and not active_steps(cfg.steps, cfg.start, cfg.end):
        raise ValueError(f"start/end: the window [{cfg.start}, {cfg.end}) contains none of the {cfg.steps} steps")
    check_memory(cfg)


def check_memory(cfg: TransferConfig) -> None:
    """Refuse, before any model is loaded, a clip whose videos and activations exceed the free memory: the
    source, plain and injected videos with their drawn panels (~8 fp32 copies of frames x H x W x 3) on the CPU,
    and the transformer's activations over (frames-1)/4+1 x H/16 x W/16 tokens on the run's device."""
    device, dtype = _device_dtype(cfg)
    hint = "use fewer --frames or a smaller --height/--width"
    what = f"transfer at {cfg.frames} frames of {cfg.height}x{cfg.width}"
    check_fits(video_bytes(cfg.frames, cfg.height, cfg.width, copies=8), "cpu", what, hint)
    try:
        width = json.loads((Path(cfg.pipeline) / "transformer" / "config.json").read_text())
        width = int(width["num_attention_heads"]) * int(width["attention_head_dim"])
    except (OSError, ValueError, KeyError, TypeError):
        width = 1536  # Wan 2.1 1.3B
    tokens = ((cfg.frames - 1) // 4 + 1) * (cfg.height // 16) * (cfg.width // 16)
    batch = 2 if cfg.guidance > 1.0 else 1
    check_fits(activation_bytes(tokens * batch, width, torch.finfo(dtype).bits // 8), device, what, hint)


def load_pipeline(path: str, device: str, dtype: torch.dtype):
    """A diffusers Wan pipeline from a folder; clear errors for anything else."""
    from diffusers import DiffusionPipeline

    import diffusers

    new_api = tuple(int(v) for v in diffusers.__version__.split(".")[:2]) >= (0, 36)  # torch_dtype -> dtype
    pipe = DiffusionPipeline.from_pretrained(path, **({"dtype": dtype} if new_api else {"torch_dtype": dtype}))
    if type(pipe).__name__ not in ("WanPipeline",):
        raise ValueError(f"pipeline: {type(pipe).__name__} is not supported by the transfer CLI yet (Wan T2V "
                         "pipelines are); other families run through the ComfyUI nodes")
    if dtype != torch.float32:
        pipe.vae.to(dtype=torch.float32)  # the Wan VAE is meant to run in fp32
    return pipe.to(device)


def resample_frames(video: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """[T,H,W,3] in [0,1] -> `frames` frames taken evenly, resized (area) to height x width."""
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video: expected [T,H,W,3], got {getattr(video, 'shape', type(video))}")
    idx = torch.linspace(0, video.shape[0] - 1, frames).round().long()
    x = video[idx].permute(0, 3, 1, 2).float()
    return F.interpolate(x, size=(height, width), mode="area").permute(0, 2, 3, 1).clamp(0, 1).contiguous()


@torch.no_grad()
def encode_source(pipe, video: torch.Tensor) -> torch.Tensor:
    """[T,H,W,3] in [0,1] -> the normalised latents the Wan transformer sees, [1, C, T', H', W']."""
    vae = pipe.vae
    p = next(vae.parameters())
    x = (video.permute(3, 0, 1, 2)[None] * 2 - 1).to(p.device, p.dtype)
    z = vae.encode(x).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    return (z - mean) / std


def schedule_sigmas(pipe, steps: int, device) -> list[float]:
    """The sampling sigmas the pipeline will use (one per step), from its own scheduler."""
    pipe.scheduler.set_timesteps(steps, device=device)
    return [float(s) for s in pipe.scheduler.sigmas[:steps]]


def _default_layers(n_blocks: int) -> list[str]:
    lo, hi = n_blocks // 3, max(n_blocks // 3 + 1, 2 * n_blocks // 3)
    return [f"block.{i}" for i in range(lo, hi)]


def extract_features(pipe, cfg: TransferConfig, latents: torch.Tensor, sigmas: list[float], device, dtype):
    """Training-free capture with the pipeline's transformer, or a Moaw tracker's features."""
    from moaw_core.engine.layer_spec import parse_layer_spec

    model = pipe.transformer
    adapter = detect(model)
    available = [lay.name for lay in adapter.layers(model)]
    layers = parse_layer_spec(cfg.layers, available) if cfg.layers else _default_layers(len(available))
    if cfg.tracker:
        from moaw_core.engine.checkpoint import load_tracker, sampling_defaults
        from moaw_core.engine.transfer import extract_tracker_features

        tracker, _, meta = load_tracker(cfg.tracker)
        check_compatible(adapter.fingerprint(tracker.backbone), adapter.fingerprint(model))
        s = sampling_defaults(meta)
        feats, _ = extract_tracker_features(tracker.to(device, dtype), latents.to(dtype), layers, s["steps"], s["shift"],
                                            seed=cfg.seed, source=f"tracker {Path(cfg.tracker).name}",
                                            init_noise=s["init_noise"])
        return feats, layers
    from moaw_core.engine.capture import capture_training_free

    embeds = pipe.encode_prompt(cfg.source_prompt, do_classifier_free_guidance=False, device=device)[0].to(dtype)
    feats = capture_training_free(model, latents.to(dtype), sigmas, layers,
                                  forward_kwargs={"encoder_hidden_states": embeds}, seed=cfg.seed,
                                  source=f"training-free {Path(cfg.source).name}")
    return feats, layers


def generate(pipe, cfg: TransferConfig, features=None, inject: InjectConfig | None = None) -> np.ndarray:
    """One pipeline call (same seed every time); with features, injected into every transformer it uses."""
    steps, cfg_on = cfg.steps, cfg.guidance > 1.0
    ctx = HookContext(n_steps=steps, step=0)
    calls = {"n": 0}
    models = [m for m in (pipe.transformer, getattr(pipe, "transformer_2", None)) if m is not None]

    def on_step_end(_pipe, i, t, kwargs):
        ctx.step, calls["n"] = i + 1, 0
        return kwargs

    def pre(module, args, kw):  # Wan calls cond first, then uncond, once per step
        ctx.sigma = float(pipe.scheduler.sigmas[ctx.step])  # the schedule the pipeline set for this call
        ctx.cond_or_uncond = ((0,) if calls["n"] == 0 else (1,)) if cfg_on else None
        calls["n"] += 1

    with contextlib.ExitStack() as stack:
        if features is not None:
            for m in models:
                adapter = detect(m)
                check_compatible(features.fingerprint, adapter.fingerprint(m))
                stack.enter_context(attach(m, [InjectHook(features, inject, adapter)], adapter, ctx))
                handle = m.register_forward_pre_hook(pre, with_kwargs=True)
                stack.callback(handle.remove)
        out = pipe(prompt=cfg.prompt, negative_prompt=cfg.negative_prompt or None, height=cfg.height,
                   width=cfg.width, num_frames=cfg.frames, num_inference_steps=steps, guidance_scale=cfg.guidance,
                   generator=torch.Generator("cpu").manual_seed(cfg.seed), output_type="np",
                   callback_on_step_end=on_step_end)
    return np.asarray(out.frames[0], dtype=np.float32)


def moft_config(cfg: TransferConfig):
    from moaw_core.moft import MoftGuidanceConfig

    return MoftGuidanceConfig(start=cfg.moft_start, end=cfg.moft_end, repeats=cfg.moft_repeats, loss=cfg.moft_loss,
                              weight=cfg.moft_weight, step_size=cfg.moft_step_size)


def moft_reference(pipe, cfg: TransferConfig, latents: torch.Tensor, device, dtype):
    """MOFT reference of the source with the pipeline's transformer (source prompt, one forward at moft_sigma)."""
    from moaw_core.moft import MoftChannels, reference_from_model

    model = pipe.transformer
    names = [lay.name for lay in detect(model).layers(model)]
    layer = cfg.moft_layer or names[len(names) // 2]
    channels = MoftChannels.load(cfg.moft_channels) if cfg.moft_channels else None
    embeds = pipe.encode_prompt(cfg.source_prompt, do_classifier_free_guidance=False, device=device)[0].to(dtype)
    return reference_from_model(model, latents.to(dtype), layer, cfg.moft_sigma, channels,
                                forward_kwargs={"encoder_hidden_states": embeds}, seed=cfg.seed,
                                source=f"source {Path(cfg.source).name}")


def generate_moft(pipe, cfg: TransferConfig, reference, device) -> tuple[np.ndarray, dict]:
    """The prompt generated with MOFT guidance (same seed and pipeline loop as `generate`)."""
    from moaw_core.moft.diffusers import guided_pipeline_call

    embeds = pipe.encode_prompt(cfg.prompt, do_classifier_free_guidance=False, device=device)[0]
    out, losses = guided_pipeline_call(pipe, reference, moft_config(cfg), embeds, cfg.steps, cfg.seed, cfg.height,
                                       cfg.width, cfg.frames, prompt=cfg.prompt,
                                       negative_prompt=cfg.negative_prompt or None, guidance_scale=cfg.guidance,
                                       output_type="np")
    return np.asarray(out.frames[0], dtype=np.float32), losses


def run_transfer(cfg: TransferConfig) -> dict:
    from moaw_core.cli import visualize as viz
    from moaw_core.metrics.report import score_against_source
    from moaw_core.data.real import load_video
    from moaw_core.metrics import prepare_source

    check_config(cfg)
    t0 = time.perf_counter()
    device, dtype = _device_dtype(cfg)
    pipe = load_pipeline(cfg.pipeline, device, dtype)
    src = resample_frames(load_video(cfg.source), cfg.frames, cfg.height, cfg.width)
    latents = encode_source(pipe, src)
    # only the steps the injection window uses are captured (30 steps x 10 blocks of Wan 1.3B at 480p would
    # otherwise be ~13 GB of fp16 features; the window's first half is half that, and the hook picks by sigma)
    sigmas = [s for i, s in enumerate(schedule_sigmas(pipe, cfg.steps, device))
              if step_active(i, cfg.steps, cfg.start, cfg.end)]
    if not sigmas:
        raise ValueError(f"start/end: the window [{cfg.start}, {cfg.end}) contains none of the {cfg.steps} steps")
    t1 = time.perf_counter()
    extra = {}
    if cfg.method == "moft":
        ref = moft_reference(pipe, cfg, latents, device, dtype)
        feats, layers = None, [ref.layer]
        t2 = time.perf_counter()
        plain = torch.from_numpy(generate(pipe, cfg))
        frames, losses = generate_moft(pipe, cfg, ref, device)
        injected = torch.from_numpy(frames)
        extra = {"moft": {"reference": ref.describe(), "channels": list(ref.channels),
                          "losses": {str(k): v for k, v in losses.items()}}}
    else:
        feats, layers = extract_features(pipe, cfg, latents, sigmas, device, dtype)
        t2 = time.perf_counter()
        inject = InjectConfig(layers=tuple(layers), strength=cfg.strength, mode=cfg.mode, start=cfg.start,
                              end=cfg.end, normalize=cfg.normalize, remove_content=cfg.remove_content,
                              branch=cfg.branch)
        plain = torch.from_numpy(generate(pipe, cfg))
        injected = torch.from_numpy(generate(pipe, cfg, feats, inject))
    t3 = time.perf_counter()

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    motion = prepare_source(src.numpy(), grid=cfg.grid)
    scores, panels = {}, [viz.label(viz.draw_tracks(src, motion.points, motion.visible, scale=1), "source")]
    second = "injected" if cfg.method == "moaw" else "moft"
    for name, video in (("plain", plain), (second, injected)):
        s = score_against_source(motion, video)
        scores[name] = {k: s[k] for k in ("motion_fidelity", "trajectory_shape", "field_agreement_moving",
                                          "field_agreement_frame")}
        panel = viz.label(viz.draw_tracks(video, s["points"], s["visible"], scale=1), name)
        viz.save_gif(panel, out / f"{name}.gif")
        panels.append(panel)
    viz.save_gif(viz.side_by_side(panels), out / "transfer.gif")
    if cfg.save_features and feats is not None:
        feats.save(out / "features.safetensors")
    report = {"scores": scores, "layers": list(layers), "method": cfg.method, **extra,
              "feature_source": feats.source if feats else "moft reference",
              "feature_steps": len(feats.steps) if feats else 1, "feature_bytes": int(feats.nbytes) if feats else 0,
              "timings_s": {"load_and_encode": t1 - t0, "features": t2 - t1, "generate_both": t3 - t2,
                            "total": time.perf_counter() - t0},
              "device": device, "dtype": str(dtype), "settings": asdict(cfg)}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, TransferConfig, required=("pipeline", "source", "prompt"))


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(TransferConfig, args)
    r = run_transfer(cfg)
    s = r["scores"]
    second = "injected" if cfg.method == "moaw" else "moft"
    print(f"motion fidelity vs source: plain {s['plain']['motion_fidelity']:.3f}, {second} "
          f"{s[second]['motion_fidelity']:.3f}; outputs in {cfg.out}")
    return 0
