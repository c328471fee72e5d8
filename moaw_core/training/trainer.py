"""The trainer (CLI verb `train`): one accelerate loop for the demo generator and the Moaw tracker.

Tasks:
  pool      render the synthetic pool into --data-cache (in --workers processes) and exit.
  codec     fit the PatchPCACodec on frames of the synthetic pool and save it to --codec.
  generate  unconditional (null-text) video generation on codec latents of synthetic clips: the
            tiny demo *generator* (a Wan transformer built from --dim/--num-layers/--ffn-dim).
            --init <generator file> continues from that file's weights (new optimiser state).
  i2v       image-to-video generation (`moaw_core.engine.i2v`): --init an unconditional generator file
            (its patch embedding is widened with zero-initialised condition channels, so it starts as
            that generator) or an I2V generator file (continued); the condition is each clip's first
            frame (--i2v-fill repeat | gray), the loss is on every frame.
  track     the tracker, fine-tuned from a generator file (--init): video latents -> track latents;
            from an I2V generator the source video takes the place of its condition latents;
            --init <tracker file> continues that tracker.
Losses (`moaw_core.engine.schedule`): flow matching ("flow"), noise ("eps") or one-step L1 regression ("l1").

Resuming: every --save-every steps `accelerator.save_state` writes <out-dir>/checkpoints/step_NNNNNN
(the last two are kept); a rerun of the same command resumes from the newest with `load_state` and
`skip_first_batches`. The data order is a function of (seed, epoch) and the noise of (seed, step,
rank), so a resumed run sees the same batches as an uninterrupted one. Multi-GPU:
`accelerate launch -m moaw_core train ...` (--batch-size is per process).
Time budget: --max-minutes stops the loop (saving state and exporting) once that much wall time has
passed; with --lr-schedule cosine the decay then follows max(step / steps, elapsed / max-minutes), so a
run cut by time still ends at the low learning rate.
Outputs: <out-dir>/loss.jsonl (one line per --log-every steps) and the final model file --export.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch import nn
from tqdm import tqdm

from moaw_core.cli import CODEC
from moaw_core.cli.limits import require_finite, require_ints
from moaw_core.engine import i2v, schedule
from moaw_core.data.augment import PhotometricConfig, ResidualConfig, photometric, residual_clip
from moaw_core.engine.checkpoint import load_backbone, load_tracker, save_model
from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec, TrackEncoding, psnr
from moaw_core.data.scenes3d import Scene3DConfig
from moaw_core.data.synth import SynthConfig
from moaw_core.data.synth_cache import render_pool
from moaw_core.tracking.graft import graft_tracker
from moaw_core.tracking.tracker import MoawTracker, backbone_forward, build_wan
from moaw_core.tracking.tracks import DenseTracks, flip_tracks, unpack_tracks

TASKS = ("pool", "codec", "generate", "i2v", "track")


@dataclass(frozen=True)
class TrainConfig:
    task: str = "generate"                 # pool | codec | generate | track
    out_dir: str = "runs/tiny_generator"   # checkpoints/, loss.jsonl
    export: str = "models/generators/moaw_tiny_wan_generator.safetensors"  # final model file (ignored by task codec)
    init: str = ""                         # track: the generator file to start from; generate: continue from it
    proj_init: str = "video"               # task track: generator input weights on the video | track channels
    graft: str = ""                        # task track: start from this tracker's update grafted onto --init
    graft_base: str = ""                   # ... the generator that tracker was fine-tuned from (tracking.graft)
    i2v_fill: str = "repeat"               # task i2v: condition frames = the first frame repeated | gray after it
    codec: str = str(CODEC)                # the bundled codec, next to the package
    # generator architecture (task generate); head dim 128 and text_dim 4096 keep ComfyUI detection happy
    dim: int = 128
    num_layers: int = 6
    ffn_dim: int = 256
    # data: a pool of synthetic clips rendered once (moaw_core.data.synth_cache), doubled by horizontal flips
    frames: int = 8
    height: int = 64
    width: int = 64
    num_clips: int = 1024
    data_seed: int = 0
    data_cache: str = "runs/data"          # "" = render in memory every run
    workers: int = 0                       # processes rendering the pool and DataLoader workers
    flip: bool = True
    texture_dir: str = ""                  # folder of videos/images: real-texture crops for half the layers
    photometric: float = 0.0               # >0: fraction of clips with exposure/contrast/gamma/colour/noise jitter
    residual: float = 0.0                  # >0 (track task): fraction of clips made residual clips (refinement input)
    short_clips: float = 0.0               # fraction of batches cut to their first L frames, L uniform in [2, frames - 1]
    static: float = 0.0                    # fraction of clips made static (frame 0 repeated; tracks: nothing moves)
    scenes3d: float = 0.0                  # fraction of the pool that is 3-D scenes (moaw_core.data.scenes3d)
    still_camera: float = 0.0              # fraction of pool clips whose camera does not move (objects still do)
    max_disp: float = 24.0                 # track encoding: px at full colour-wheel saturation
    depth_near: float = 0.0
    depth_far: float = 16.0
    # optimisation
    loss: str = "flow"                     # flow | eps | l1
    loss_weighting: str = "none"           # none | codec: weight latent channels by their pixel energy
    timestep_sampling: str = "logit_normal"
    shift: float = 1.0                     # time shift for training sigmas (and recorded for inference)
    sample_steps: int = 1                  # recorded default inference steps
    steps: int = 2000
    batch_size: int = 8                    # per process
    lr: float = 3e-4
    warmup: int = 100
    lr_schedule: str = "constant"          # constant | cosine (to 0.1 x lr at the end of steps / max_minutes)
    max_minutes: float = 0.0               # >0: stop (save + export) after this much wall time
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    save_every: int = 200
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"            # no | fp16 | bf16
    cpu_threads: int = 0                   # >0: torch.set_num_threads (1 is much faster on a busy shared CPU)
    export_only: bool = False              # export from the newest saved state, no training
    export_every: int = 0                  # >0: also export the model file every N steps (long runs)
    export_dtype: str = "fp32"             # fp32 | fp16 | bf16: dtype of the exported model file


# ----------------------------------------------------------------------------- data
class ClipLatents(torch.utils.data.Dataset):
    """Item i -> {"video": [C,T,h,w]} (+ "tracks": [2C,T,h,w] with a track codec); i >= N is clip i - N flipped.

    photometric > 0: that fraction of reads jitters the video (`moaw_core.data.augment`); the tracks are unchanged.
    residual > 0 (with a track codec): that fraction of reads becomes a residual clip (frames warped to frame 0 by
    perturbed tracks, the residual as target: what the tracker's refinement pass sees; `augment.residual_clip`).
    static > 0: that fraction of reads becomes a still clip: frame 0 repeated, its tracks frame 0's (nothing moves;
    the photometric jitter's sensor noise still differs per frame). Drawn first, only when static > 0.
    """

    def __init__(self, video: torch.Tensor, tracks: torch.Tensor, codec, track_codec=None, flip: bool = True,
                 photometric: float = 0.0, seed: int = 0, residual: float = 0.0, static: float = 0.0):
        self.video, self.tracks, self.codec, self.track_codec = video, tracks, codec, track_codec
        self.n, self.flip = len(video), flip
        self.photometric = PhotometricConfig(prob=photometric) if photometric > 0 else None
        self.residual = ResidualConfig(prob=residual) if residual > 0 and track_codec is not None else None
        self.static = static if track_codec is not None else 0.0
        self.seed, self.draws = seed, 0

    def __len__(self) -> int:
        return self.n * (2 if self.flip else 1)

    def __getitem__(self, i: int) -> dict:
        k, flipped = i % self.n, i >= self.n
        v = self.video[k].float() / 255.0
        t = unpack_tracks(self.tracks[k].float()) if self.track_codec is not None else None
        if self.photometric is not None or self.residual is not None or self.static > 0:  # fresh draws per read
            self.draws += 1
            info = torch.utils.data.get_worker_info()
            wid = info.id if info is not None else 0
            g = torch.Generator().manual_seed(hash((self.seed, wid, self.draws, i)) % (2 ** 63))
            if self.static > 0 and float(torch.rand((), generator=g)) < self.static:
                T = v.shape[0]
                v = v[:1].expand(T, -1, -1, -1).clone()
                t = DenseTracks(t.xy[:1].expand(T, -1, -1, -1).clone(), t.visible[:1].expand(T, -1, -1).clone(),
                                None if t.depth is None else t.depth[:1].expand(T, -1, -1).clone())
            if self.residual is not None:
                v, t = residual_clip(v, t, g, self.residual)
            if self.photometric is not None:
                v = photometric(v, g, self.photometric)
        out = {"video": self.codec.encode(v.flip(2) if flipped else v)[0]}
        if t is not None:
            out["tracks"] = self.track_codec.encode(flip_tracks(t) if flipped else t)[0]
        return out


def load_pool(cfg: TrainConfig, length: int | None = None, seed: int | None = None):
    """(video uint8 [N,T,H,W,3], tracks [N,T,H,W,4]): round(N * scenes3d) 3-D scenes after N - that 2-D clips."""
    n, s = length or cfg.num_clips, cfg.data_seed if seed is None else seed
    n3 = round(n * cfg.scenes3d)
    tex = f"_tex-{Path(cfg.texture_dir).name}" if cfg.texture_dir else ""
    size = f"{cfg.frames}x{cfg.height}x{cfg.width}"
    parts = []
    for kind, count in (("synth", n - n3), ("scenes3d", n3)):
        if count == 0:
            continue
        make = SynthConfig if kind == "synth" else Scene3DConfig
        syn = make(frames=cfg.frames, height=cfg.height, width=cfg.width, texture_dir=cfg.texture_dir or None,
                   still_camera=cfg.still_camera)
        still = f"_still{cfg.still_camera:g}" if cfg.still_camera else ""
        path = Path(cfg.data_cache) / f"{kind}_{size}_n{count}_s{s}{tex}{still}.safetensors" if cfg.data_cache else None
        parts.append(render_pool(syn, count, s, path, progress=True, workers=cfg.workers))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def track_encoding(cfg: TrainConfig, codec) -> TrackEncoding:
    return TrackEncoding(cfg.max_disp, codec.codec_id, codec.latent_channels, (cfg.depth_near, cfg.depth_far))


# ----------------------------------------------------------------------------- models
class GeneratorModel(nn.Module):
    """forward(x, t) of an unconditional generator backbone (a module, so accelerate can wrap it)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return backbone_forward(self.backbone, x, timestep)


class I2VModel(nn.Module):
    """forward(x, video, t) of an image-to-video generator: the condition is built from the clip's own latents
    (`i2v.condition_from_latents`, the same layout the CLI and ComfyUI build from pixels)."""

    def __init__(self, backbone: nn.Module, layout: i2v.I2VLayout, gray_latent: torch.Tensor):
        super().__init__()
        self.backbone, self.layout = backbone, layout
        self.register_buffer("gray_latent", gray_latent, persistent=False)

    def forward(self, x: torch.Tensor, video: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        cond = i2v.condition_from_latents(video, self.layout, self.gray_latent)
        return backbone_forward(self.backbone, torch.cat([x, cond.to(x.dtype)], 1), timestep)


def build_i2v(cfg: TrainConfig, codec) -> I2VModel:
    if not cfg.init:
        raise ValueError("init: task 'i2v' needs --init <generator model file>, got ''")
    generator, meta = load_backbone(cfg.init, "generator")
    if meta["moaw.codec"] != codec.codec_id:
        raise ValueError(f"init: generator was trained on codec {meta['moaw.codec']!r}, --codec is {codec.codec_id!r}")
    layout = i2v.layout_of(generator, meta)
    if layout is None:
        generator, layout = i2v.widen_for_i2v(generator, cfg.i2v_fill)
    elif layout.fill != cfg.i2v_fill:
        raise ValueError(f"i2v_fill: {cfg.init} was trained with fill {layout.fill!r}, got {cfg.i2v_fill!r}")
    gray = codec.encode(torch.full((1, cfg.height, cfg.width, 3), i2v.GRAY))[0, :, 0]
    return I2VModel(generator.float().train(), layout, gray)


def build_model(cfg: TrainConfig, codec) -> nn.Module:
    if cfg.task == "i2v":
        return build_i2v(cfg, codec)
    if cfg.task == "generate":
        c = codec.latent_channels
        if cfg.init:
            generator, meta = load_backbone(cfg.init, "generator")
            if meta["moaw.codec"] != codec.codec_id:
                raise ValueError(f"init: generator was trained on codec {meta['moaw.codec']!r}, --codec is {codec.codec_id!r}")
            return GeneratorModel(generator.float().train())
        return GeneratorModel(build_wan(cfg.dim, cfg.num_layers, cfg.ffn_dim, c, c, seed=cfg.seed))
    if not cfg.init:
        raise ValueError("init: task 'track' needs --init <generator model file>, got ''")
    backbone, meta = load_backbone(cfg.init)
    if meta["moaw.codec"] != codec.codec_id:
        raise ValueError(f"init: {cfg.init} was trained on codec {meta['moaw.codec']!r}, --codec is {codec.codec_id!r}")
    if meta["moaw.kind"] == "tracker" and cfg.graft:
        raise ValueError(f"init: --graft grafts onto a generator, {cfg.init} is a tracker")
    if meta["moaw.kind"] == "tracker":  # continue a tracker (new optimiser state)
        tracker, enc, _ = load_tracker(cfg.init)
        if enc.to_json() != track_encoding(cfg, codec).to_json():
            raise ValueError(f"init: tracker {cfg.init} uses track encoding {enc.to_json()}, the flags give "
                             f"{track_encoding(cfg, codec).to_json()}")
        return tracker.float().train()
    generator = backbone
    if cfg.graft:
        return graft_from_files(cfg, codec, generator).train()
    return MoawTracker.from_generator(generator.float(), 2 * codec.latent_channels, cfg.proj_init).train()


def graft_from_files(cfg: TrainConfig, codec, generator: nn.Module) -> MoawTracker:
    """Task track with --graft: the tracker file's update (over --graft-base) grafted onto the --init generator."""
    tracker, enc, _ = load_tracker(cfg.graft)
    source, meta = load_backbone(cfg.graft_base, "generator")
    if enc.to_json() != track_encoding(cfg, codec).to_json():
        raise ValueError(f"graft: tracker {cfg.graft} uses track encoding {enc.to_json()}, the flags give "
                         f"{track_encoding(cfg, codec).to_json()}")
    if meta["moaw.codec"] != codec.codec_id:
        raise ValueError(f"graft_base: {cfg.graft_base} was trained on codec {meta['moaw.codec']!r}, --codec is "
                         f"{codec.codec_id!r}")
    grafted, stats = graft_tracker(tracker, source.float(), generator.float())
    print(json.dumps({"graft": cfg.graft, "graft_base": cfg.graft_base, **{k: round(v, 4) for k, v in stats.items()}}))
    return grafted


def channel_weights(cfg: TrainConfig, codec) -> torch.Tensor | None:
    if cfg.loss_weighting == "none":
        return None
    if cfg.loss_weighting != "codec" or not hasattr(codec, "scale"):
        raise ValueError(f"loss_weighting: expected 'none' or 'codec' (a PatchPCACodec), got {cfg.loss_weighting!r}")
    return schedule.codec_channel_weights(codec.scale, 2 if cfg.task == "track" else 1)


def short_batch(cfg: TrainConfig, batch: dict, step: int, rank: int) -> dict:
    """With probability cfg.short_clips (drawn per step and rank, from its own seed stream so 0 changes nothing
    else), the batch cut to its first L frames, L uniform in [2, frames - 1]: frame-0-anchored tracks stay exact,
    and the tracker learns the short clips and pairs it is also given (the last window of a clip, 2-frame clips).
    The trainer's codec (PatchPCACodec) is per frame, so cutting the latents equals encoding the cut clip."""
    T = batch["video"].shape[2]
    if cfg.short_clips <= 0 or T <= 2:
        return batch
    g = torch.Generator().manual_seed(cfg.seed * 7_000_003 + step * 977 + rank + 1)
    if float(torch.rand((), generator=g)) >= cfg.short_clips:
        return batch
    L = int(torch.randint(2, T, (), generator=g))
    return {k: v[:, :, :L] for k, v in batch.items()}


def compute_loss(cfg: TrainConfig, model: nn.Module, batch: dict, step: int, rank: int,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    x0 = batch["tracks"] if cfg.task == "track" else batch["video"]
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 131 + rank)
    sigma = schedule.training_sigmas(cfg.loss, x0.shape[0], g, cfg.timestep_sampling, cfg.shift).to(x0.device)
    noise = schedule.training_noise(cfg.loss, x0.shape, g).to(x0.device, x0.dtype)
    x_t = schedule.noisy_input(x0, noise, sigma)
    t = sigma * 1000.0
    v = model(x_t, batch["video"], t) if cfg.task in ("track", "i2v") else model(x_t, t)
    return schedule.diffusion_loss(v, x0, noise, x_t, sigma, cfg.loss, weight)


# ----------------------------------------------------------------------------- loop
def _latest_state(out_dir: Path) -> tuple[Path | None, int]:
    states = sorted((out_dir / "checkpoints").glob("step_*"))
    return (states[-1], int(states[-1].name.split("_")[1])) if states else (None, 0)


def fit_codec(cfg: TrainConfig) -> int:
    video, _ = load_pool(cfg)
    n_fit = max(len(video) // 2, 1)
    codec = PatchPCACodec.fit(video[:n_fit].float() / 255.0, channels=16, patch=4)
    Path(cfg.codec).parent.mkdir(parents=True, exist_ok=True)
    codec.save(cfg.codec)
    held = video[n_fit:n_fit + 64].float() / 255.0 if len(video) > n_fit else video[:1].float() / 255.0
    print(json.dumps({"codec": cfg.codec, "fit_clips": n_fit, "heldout_psnr_db": psnr(held, codec.decode(codec.encode(held)))}))
    return 0


_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_config(cfg: TrainConfig) -> None:
    """Clear errors for bad settings before anything is built."""
    if cfg.task not in TASKS or cfg.loss not in schedule.LOSSES:
        raise ValueError(f"task/loss: expected task in {TASKS} and loss in {schedule.LOSSES}, got {cfg.task!r}/{cfg.loss!r}")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule: expected 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    if cfg.i2v_fill not in i2v.FILLS:
        raise ValueError(f"i2v_fill: expected one of {i2v.FILLS}, got {cfg.i2v_fill!r}")
    if cfg.export_dtype not in _DTYPES:
        raise ValueError(f"export_dtype: expected one of {tuple(_DTYPES)}, got {cfg.export_dtype!r}")
    if not 0.0 <= cfg.photometric <= 1.0:
        raise ValueError(f"photometric: expected a fraction in [0, 1], got {cfg.photometric}")
    if not 0.0 <= cfg.residual <= 1.0:
        raise ValueError(f"residual: expected a fraction in [0, 1], got {cfg.residual}")
    if not 0.0 <= cfg.static <= 1.0:
        raise ValueError(f"static: expected a fraction in [0, 1], got {cfg.static}")
    if not 0.0 <= cfg.short_clips <= 1.0:
        raise ValueError(f"short_clips: expected a fraction in [0, 1], got {cfg.short_clips}")
    require_ints(1, steps=cfg.steps, batch_size=cfg.batch_size, num_clips=cfg.num_clips, frames=cfg.frames,
                 dim=cfg.dim, num_layers=cfg.num_layers, ffn_dim=cfg.ffn_dim, sample_steps=cfg.sample_steps,
                 save_every=cfg.save_every, log_every=cfg.log_every)
    require_ints(8, height=cfg.height, width=cfg.width)
    require_ints(0, warmup=cfg.warmup)
    require_finite(lr=cfg.lr, shift=cfg.shift, max_disp=cfg.max_disp, grad_clip=cfg.grad_clip,
                   max_minutes=cfg.max_minutes, weight_decay=cfg.weight_decay)
    if cfg.lr <= 0 or cfg.shift <= 0 or cfg.max_disp <= 0:
        raise ValueError(f"lr/shift/max_disp: must be > 0, got {cfg.lr}/{cfg.shift}/{cfg.max_disp}")
    if not 0.0 <= cfg.scenes3d <= 1.0:
        raise ValueError(f"scenes3d: expected a fraction in [0, 1], got {cfg.scenes3d}")
    if not 0.0 <= cfg.still_camera <= 1.0:
        raise ValueError(f"still_camera: expected a fraction in [0, 1], got {cfg.still_camera}")
    if cfg.workers < 0 or cfg.max_minutes < 0 or cfg.export_every < 0:
        raise ValueError(f"workers/max_minutes/export_every: must be >= 0, got {cfg.workers}/{cfg.max_minutes}/{cfg.export_every}")
    if bool(cfg.graft) != bool(cfg.graft_base) or (cfg.graft and cfg.task != "track"):
        raise ValueError(f"graft/graft_base: task 'track' takes both (a tracker file and the generator it was trained "
                         f"from) or neither, got task {cfg.task!r}, graft {cfg.graft!r}, graft_base {cfg.graft_base!r}")
    for name in ("graft", "graft_base"):
        path = getattr(cfg, name)
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"{name}: no such model file: {path}")


def train(cfg: TrainConfig, command: str = "") -> Path | None:
    """Run the training described by `cfg` (resuming from <out_dir>/checkpoints); returns the export path."""
    check_config(cfg)
    threads = torch.get_num_threads()
    try:
        if cfg.cpu_threads > 0:
            torch.set_num_threads(cfg.cpu_threads)
        return _train(cfg, command)
    finally:
        torch.set_num_threads(threads)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """The trainer's Accelerator. `step_scheduler_with_optimizer=False`: accelerate would otherwise step a prepared
    scheduler `num_processes` times per optimizer step (it assumes schedules counted in single-process batches),
    running warm-up and decay N times too fast on N GPUs; our schedule counts optimizer steps."""
    return Accelerator(mixed_precision=cfg.mixed_precision, step_scheduler_with_optimizer=False,
                       dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))


def lr_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer, clock: dict) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `cfg.warmup` optimizer steps, then constant or cosine down to 0.1 x lr (by step, or by
    elapsed time with --max-minutes; `clock["start"]` is the loop's start). Stepped once per optimizer step."""

    def lr_at(s: int) -> float:
        warm = min(1.0, (s + 1) / max(cfg.warmup, 1))
        if cfg.lr_schedule == "constant":
            return warm
        progress = s / max(cfg.steps, 1)
        if cfg.max_minutes > 0:
            progress = max(progress, (time.monotonic() - clock["start"]) / (60.0 * cfg.max_minutes))
        return warm * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))

    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _train(cfg: TrainConfig, command: str) -> Path | None:
    acc = make_accelerator(cfg)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    set_seed(cfg.seed)
    codec = PatchPCACodec.load(cfg.codec)
    enc = track_encoding(cfg, codec)
    model = build_model(cfg, codec)
    # --export-only with nothing saved exports the model as built (a step-0 tracker, a graft): no pool needed
    need_data = not (cfg.export_only and _latest_state(Path(cfg.out_dir))[0] is None)
    if need_data:
        with acc.main_process_first():
            video, tracks = load_pool(cfg)
        ds = ClipLatents(video, tracks, codec, TrackCodec(codec, enc) if cfg.task == "track" else None, cfg.flip,
                         cfg.photometric, cfg.seed, cfg.residual, cfg.static)
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(cfg.seed), num_workers=cfg.workers,
                                             worker_init_fn=_worker_init if cfg.workers else None,
                                             persistent_workers=cfg.workers > 0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    clock = {"start": time.monotonic()}
    sched = lr_schedule(cfg, opt, clock)
    if need_data:
        model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    else:
        model, opt, sched = acc.prepare(model, opt, sched)
        loader = None

    out_dir = Path(cfg.out_dir)
    state, step = _latest_state(out_dir)
    if state is not None:
        acc.load_state(str(state))
        acc.print(f"resumed from {state} (step {step})")
    kind = "tracker" if cfg.task == "track" else "generator"
    sched_meta = {"parameterization": "flow", "loss": cfg.loss, "loss_weighting": cfg.loss_weighting,
                  "shift": cfg.shift, "steps": cfg.sample_steps, "init_noise": "zeros" if cfg.loss == "l1" else "gaussian"}

    def export(at_step: int) -> Path | None:
        if not acc.is_main_process:
            return None
        unwrapped = acc.unwrap_model(model)
        extra = {"moaw.i2v": unwrapped.layout.to_json()} if cfg.task == "i2v" else None
        path = save_model(cfg.export, unwrapped.backbone, kind, codec.codec_id, enc if kind == "tracker" else None,
                          codec.latent_channels if kind == "tracker" else None, sched_meta, command, at_step,
                          dtype=_DTYPES[cfg.export_dtype], extra_meta=extra)
        acc.print(f"exported {kind} (step {at_step}) to {path}")
        return path

    if not cfg.export_only:
        clock["start"] = time.monotonic()
        step = _loop(cfg, acc, model, opt, loader, sched, step, out_dir, channel_weights(cfg, codec), export, clock)
    return export(step)


def _loop(cfg, acc, model, opt, loader, sched, step: int, out_dir: Path, weight: torch.Tensor | None,
          export=None, clock=None) -> int:
    per_epoch = len(loader)
    if per_epoch == 0:
        raise ValueError(f"batch_size: {cfg.batch_size} is larger than the dataset ({len(loader.dataset)} items)")
    log = out_dir / "loss.jsonl"
    if acc.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    bar = tqdm(total=cfg.steps, initial=step, disable=not acc.is_main_process, desc=f"train {cfg.task}")
    model.train()
    running = []
    while step < cfg.steps:
        epoch = step // per_epoch
        loader.set_epoch(epoch)  # seedable sampler: the order is a function of (seed, epoch)
        skip = step - epoch * per_epoch
        batches = acc.skip_first_batches(loader, skip) if skip else loader
        for batch in batches:
            batch = short_batch(cfg, batch, step, acc.process_index)
            loss = compute_loss(cfg, model, batch, step, acc.process_index, weight)
            acc.backward(loss)
            if cfg.grad_clip > 0:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            running.append(loss.detach())  # reduced at log steps only: no device sync per step
            bar.update(1)
            out_of_time = cfg.max_minutes > 0 and time.monotonic() - clock["start"] > 60.0 * cfg.max_minutes
            if cfg.max_minutes > 0 and acc.num_processes > 1:  # every process stops at the same step
                out_of_time = bool(acc.gather(torch.tensor([float(out_of_time)], device=acc.device)).max() > 0)
            if step % cfg.log_every == 0 or step == cfg.steps or out_of_time:
                mean = float(acc.gather(torch.stack(running)).mean())
                running = []
                bar.set_postfix(loss=f"{mean:.4f}")
                if acc.is_main_process:
                    with log.open("a") as f:
                        f.write(json.dumps({"step": step, "loss": mean, "lr": sched.get_last_lr()[0]}) + "\n")
            if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
                _save_state(acc, out_dir, step)
            if export is not None and cfg.export_every > 0 and step % cfg.export_every == 0 and step < cfg.steps:
                export(step)
            if out_of_time:
                acc.print(f"stopping at step {step}: --max-minutes {cfg.max_minutes} reached")
            if step >= cfg.steps or out_of_time:
                break
        else:
            continue
        break
    bar.close()
    return step


def _save_state(acc, out_dir: Path, step: int, keep: int = 2) -> None:
    acc.save_state(str(out_dir / "checkpoints" / f"step_{step:06d}"))
    acc.wait_for_everyone()
    if acc.is_main_process:
        for old in sorted((out_dir / "checkpoints").glob("step_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
