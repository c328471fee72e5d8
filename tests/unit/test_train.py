"""Trainer: loss goes down, resume == uninterrupted run, tracker fine-tuning from a generator file, CLI."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from moaw_core.engine.checkpoint import load_backbone, read_checkpoint, sampling_defaults
from moaw_core.training.trainer import TrainConfig, fit_codec, train
from moaw_core.tracking.tracks import flip_tracks, identity_tracks


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(codec=str(d / "codec.safetensors"), frames=4, height=16, width=16, num_clips=8,
                      data_cache=str(d), num_layers=2, batch_size=4, lr=2e-3, warmup=1, log_every=2,
                      save_every=100, steps=24, cpu_threads=1, out_dir=str(d / "gen"), export=str(d / "gen.safetensors"))
    fit_codec(dataclasses.replace(cfg, task="codec"))
    return cfg, d


def _losses(out_dir) -> list[float]:
    return [json.loads(line)["loss"] for line in (out_dir / "loss.jsonl").read_text().splitlines()]


def test_generate_loss_goes_down_and_exports(base):
    cfg, d = base
    path = train(cfg, "test")
    losses = _losses(d / "gen")
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    sd, meta = read_checkpoint(path)
    assert meta["moaw.kind"] == "generator" and meta["moaw.step"] == "24" and "head.modulation" in sd


def test_resume_matches_uninterrupted(base):
    cfg, d = base
    a = train(dataclasses.replace(cfg, steps=8, save_every=4, out_dir=str(d / "a"), export=str(d / "a.safetensors")))
    b_dir = str(d / "b")
    train(dataclasses.replace(cfg, steps=4, save_every=4, out_dir=b_dir, export=str(d / "b4.safetensors")))
    b = train(dataclasses.replace(cfg, steps=8, save_every=4, out_dir=b_dir, export=str(d / "b.safetensors")))
    sa, sb = read_checkpoint(a)[0], read_checkpoint(b)[0]
    assert read_checkpoint(b)[1]["moaw.step"] == "8"
    assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_track_from_generator(base):
    cfg, d = base
    gen = d / "gen.safetensors"
    if not gen.is_file():
        train(cfg)
    path = train(dataclasses.replace(cfg, task="track", init=str(gen), loss="l1", steps=6, loss_weighting="codec",
                                     out_dir=str(d / "trk"), export=str(d / "trk.safetensors")))
    model, meta = load_backbone(path, "tracker")
    assert (model.config.in_channels, model.config.out_channels) == (48, 32)
    assert json.loads(meta["moaw.source_input"])["video_latents"] == [32, 48]
    assert sampling_defaults(meta) == {"steps": 1, "shift": 1.0, "init_noise": "zeros"}  # one-step regression
    with pytest.raises(ValueError, match="init"):
        train(dataclasses.replace(cfg, task="track", init="", out_dir=str(d / "x")))
    with pytest.raises(FileNotFoundError):
        train(dataclasses.replace(cfg, task="track", init=str(d / "nope.safetensors"), out_dir=str(d / "x")))


def test_flip_tracks_and_cli():
    t = identity_tracks(2, 3, 4)
    t.xy[1, ..., 0] += 1.0  # everything moves right by 1 px
    f = flip_tracks(t)
    assert torch.allclose(f.xy[0], t.xy[0]) and torch.allclose(f.xy[1, ..., 0] - f.xy[0, ..., 0], torch.tensor(-1.0))
    from moaw_core.__main__ import build_parser
    from moaw_core.cli.train import config_from_args
    args = build_parser().parse_args(["train", "--task", "track", "--steps", "5", "--no-flip", "--loss", "l1"])
    cfg = config_from_args(args)
    assert (cfg.task, cfg.steps, cfg.flip, cfg.loss) == ("track", 5, False, "l1")


def test_pool_parallel_render_matches_serial(tmp_path):
    from moaw_core.data.synth import SynthConfig
    from moaw_core.data.synth_cache import render_pool
    cfg = SynthConfig(frames=3, height=16, width=16)
    v1, t1 = render_pool(cfg, 5, 7)
    v2, t2 = render_pool(cfg, 5, 7, tmp_path / "pool.safetensors", workers=2)
    assert torch.equal(v1, v2) and torch.equal(t1, t2)
    v3, _ = render_pool(cfg, 5, 7, tmp_path / "pool.safetensors")  # read back from the cache
    assert torch.equal(v1, v3)


def test_pool_mixes_3d_scenes(tmp_path):
    from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset
    from moaw_core.data.synth import SynthConfig
    from moaw_core.data.synth_cache import render_pool
    from moaw_core.training.trainer import load_pool
    cfg = TrainConfig(frames=3, height=16, width=16, num_clips=5, scenes3d=0.4, data_cache=str(tmp_path))
    video, tracks = load_pool(cfg)
    assert video.shape == (5, 3, 16, 16, 3) and tracks.shape == (5, 3, 16, 16, 4)
    flat, _ = render_pool(SynthConfig(frames=3, height=16, width=16), 3, 0)
    assert torch.equal(video[:3], flat)  # 3 clips of the 2-D pool, then 2 scenes
    v3d, _ = Scenes3DDataset(Scene3DConfig(frames=3, height=16, width=16), 2, 0)[1]
    assert torch.equal(video[4], (v3d.clamp(0, 1) * 255).round().to(torch.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes3d_3x16x16_n2_s0.safetensors",
                                                         "synth_3x16x16_n3_s0.safetensors"]
    assert torch.equal(load_pool(cfg)[1], tracks)  # read back from the cache
    with pytest.raises(TypeError, match="cfg: expected SynthConfig or Scene3DConfig"):
        render_pool({"frames": 3}, 2, 0)


def test_time_budget_cosine_fp16_export_and_continue(base):
    cfg, d = base
    gen = train(dataclasses.replace(cfg, steps=1000, max_minutes=1e-4, lr_schedule="cosine", export_dtype="fp16",
                                    out_dir=str(d / "budget"), export=str(d / "budget.safetensors")))
    sd, meta = read_checkpoint(gen)
    assert 1 <= int(meta["moaw.step"]) < 1000  # stopped by --max-minutes, state saved and exported
    assert all(v.dtype == torch.float16 for v in sd.values() if v.is_floating_point())
    lrs = [json.loads(x)["lr"] for x in (d / "budget" / "loss.jsonl").read_text().splitlines()]
    assert not lrs or lrs[-1] <= cfg.lr * 0.11  # cosine by elapsed time: at the floor when time is up
    model, _ = load_backbone(gen, "generator")
    assert next(model.parameters()).dtype == torch.float32  # loaded back in fp32
    # continue a generator, then a tracker, from their files
    cont = train(dataclasses.replace(cfg, init=str(gen), steps=2, out_dir=str(d / "cont"), export=str(d / "cont.safetensors")))
    assert read_checkpoint(cont)[1]["moaw.step"] == "2"
    trk = train(dataclasses.replace(cfg, task="track", init=str(gen), loss="l1", steps=2, out_dir=str(d / "t1"),
                                    export=str(d / "t1.safetensors")))
    trk2 = train(dataclasses.replace(cfg, task="track", init=str(trk), loss="l1", steps=2, out_dir=str(d / "t2"),
                                     export=str(d / "t2.safetensors")))
    assert read_checkpoint(trk2)[1]["moaw.kind"] == "tracker"
    with pytest.raises(ValueError, match="track encoding"):
        train(dataclasses.replace(cfg, task="track", init=str(trk), loss="l1", steps=2, max_disp=8.0,
                                  out_dir=str(d / "t3"), export=str(d / "t3.safetensors")))
    # a graft of the tracker's update onto a continued generator (`tracking.graft`): step 0 is exactly
    # cont + (tracker - gen) with the tracker's own projections; onto its own generator it is the tracker
    fp = lambda p: {k: v.float() for k, v in read_checkpoint(p)[0].items()}  # noqa: E731
    for onto, name in ((gen, "g_self"), (cont, "g_cont")):
        out = train(dataclasses.replace(cfg, task="track", init=str(onto), graft=str(trk), graft_base=str(gen),
                                        loss="l1", export_only=True, out_dir=str(d / name), data_cache=str(d / "none"),
                                        export=str(d / f"{name}.safetensors")))
        assert not list((d / "none").glob("*.safetensors"))  # nothing saved to resume: no pool is rendered
        g, t, s, o = fp(out), fp(trk), fp(gen), fp(onto)
        assert g.keys() == t.keys()
        for k in g:
            want = t[k] if k.startswith(("patch_embedding.", "head.head.")) else o[k] + t[k] - s[k]
            assert torch.allclose(g[k], want, atol=2e-3), (name, k)  # fp16 files
    # --export-only from a saved state exports that state (the pool is loaded as for resuming)
    again = train(dataclasses.replace(cfg, task="track", init=str(gen), loss="l1", steps=2, export_only=True,
                                      out_dir=str(d / "t1"), export=str(d / "t1_again.safetensors")))
    a, b = fp(again), fp(trk)
    assert read_checkpoint(again)[1]["moaw.step"] == "2" and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="onto a generator"):
        train(dataclasses.replace(cfg, task="track", init=str(trk), graft=str(trk), graft_base=str(gen), loss="l1",
                                  export_only=True, out_dir=str(d / "g_bad"), export=str(d / "g_bad.safetensors")))


@pytest.mark.parametrize("field,value", [("lr_schedule", "linear"), ("export_dtype", "int8"), ("workers", -1),
                                         ("max_minutes", -1.0), ("task", "nope"),
                                         ("scenes3d", 1.5), ("residual", 1.5), ("short_clips", -0.1), ("static", 1.5)])
def test_bad_train_settings(base, field, value):
    cfg, d = base
    with pytest.raises(ValueError, match=field):
        train(dataclasses.replace(cfg, **{field: value}))


def test_photometric_training_runs(base):
    cfg, d = base
    path = train(dataclasses.replace(cfg, steps=2, photometric=0.8, out_dir=str(d / "photo"),
                                     export=str(d / "photo.safetensors")))
    assert read_checkpoint(path)[1]["moaw.step"] == "2"
    with pytest.raises(ValueError, match="photometric"):
        train(dataclasses.replace(cfg, photometric=2.0))


def test_short_clips_cut_batches_to_their_first_frames(base):
    """short_batch: with short_clips=0 the batch is untouched; with 1 every batch is cut (video and tracks alike) to
    its first L frames, L in [2, T - 1], the same L for the same (seed, step, rank), many lengths over steps; a
    track training with short clips runs and exports; the encoding of a cut clip equals the cut encoding."""
    from moaw_core.tracking.codecs import PatchPCACodec
    from moaw_core.training.trainer import short_batch

    cfg, d = base
    batch = {"video": torch.randn(2, 16, 8, 4, 4), "tracks": torch.randn(2, 32, 8, 4, 4)}
    assert short_batch(cfg, batch, 3, 0) is batch
    cut = dataclasses.replace(cfg, short_clips=1.0)
    lengths = set()
    for step in range(40):
        out = short_batch(cut, batch, step, 0)
        L = out["video"].shape[2]
        assert 2 <= L <= 7 and out["tracks"].shape[2] == L
        assert torch.equal(out["video"], batch["video"][:, :, :L]) and torch.equal(out["tracks"], batch["tracks"][:, :, :L])
        assert short_batch(cut, batch, step, 0)["video"].shape[2] == L
        lengths.add(L)
    assert lengths == set(range(2, 8))
    half = [short_batch(dataclasses.replace(cfg, short_clips=0.5), batch, s, 0)["video"].shape[2] for s in range(60)]
    assert 10 < sum(L == 8 for L in half) < 50
    codec = PatchPCACodec.load(cfg.codec)
    clip = torch.rand(4, 16, 16, 3)
    assert torch.allclose(codec.encode(clip[:2]), codec.encode(clip)[:, :, :2], atol=1e-6)  # per-frame codec
    gen = d / "gen.safetensors"
    if not gen.is_file():
        train(cfg)
    path = train(dataclasses.replace(cfg, task="track", init=str(gen), loss="l1", steps=3, short_clips=1.0,
                                     out_dir=str(d / "short"), export=str(d / "short.safetensors")))
    assert read_checkpoint(path)[1]["moaw.step"] == "3"


def test_residual_clips_in_the_track_data():
    """ClipLatents(residual=1): every read is a residual clip (warped frames, residual tracks), encoded like any
    clip; with residual=0 the reads are the pool's clips."""
    from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset
    from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec, TrackEncoding
    from moaw_core.training.trainer import ClipLatents

    ds = Scenes3DDataset(Scene3DConfig(frames=4, height=32, width=32), 2, 0)
    video = torch.stack([(ds[i][0] * 255).round().to(torch.uint8) for i in range(2)])
    tracks = torch.stack([ds[i][1] for i in range(2)])
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    tc = TrackCodec(codec, TrackEncoding(16.0, codec.codec_id, 16))
    plain = ClipLatents(video, tracks, codec, tc, flip=False)
    res = ClipLatents(video, tracks, codec, tc, flip=False, residual=1.0)
    a, b = plain[0], res[0]
    assert a["video"].shape == b["video"].shape and a["tracks"].shape == b["tracks"].shape
    assert not torch.allclose(a["video"], b["video"]) and not torch.allclose(a["tracks"], b["tracks"])
    assert torch.allclose(a["video"][:, 0], b["video"][:, 0], atol=1e-4)  # frame 0 is never warped


def test_static_clips_in_the_track_data():
    """ClipLatents(static=1): every read is its clip's frame 0 repeated, with frame 0's tracks at every frame
    (nothing moves); with photometric jitter the frames differ only by per-frame noise."""
    from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset
    from moaw_core.tracking.codecs import PatchPCACodec, TrackCodec, TrackEncoding
    from moaw_core.training.trainer import ClipLatents

    ds = Scenes3DDataset(Scene3DConfig(frames=4, height=32, width=32), 2, 0)
    video = torch.stack([(ds[i][0] * 255).round().to(torch.uint8) for i in range(2)])
    tracks = torch.stack([ds[i][1] for i in range(2)])
    codec = PatchPCACodec(torch.linalg.qr(torch.randn(48, 48))[0][:, :16], torch.full((48,), 0.5), torch.ones(16))
    tc = TrackCodec(codec, TrackEncoding(16.0, codec.codec_id, 16))
    plain, still = ClipLatents(video, tracks, codec, tc, flip=False)[0], ClipLatents(video, tracks, codec, tc, flip=False,
                                                                                     static=1.0)[0]
    assert torch.allclose(still["video"][:, 0], plain["video"][:, 0], atol=1e-5)
    assert all(torch.allclose(still["video"][:, t], still["video"][:, 0]) for t in range(4))
    assert not torch.allclose(plain["video"][:, 3], plain["video"][:, 0])  # the pool clip itself moves
    assert torch.allclose(still["tracks"][:, 0], plain["tracks"][:, 0], atol=1e-5)  # frame 0's tracks, held
    assert all(torch.allclose(still["tracks"][:, t], still["tracks"][:, 0]) for t in range(4))
    noisy = ClipLatents(video, tracks, codec, tc, flip=False, static=1.0, photometric=1.0)[0]["video"]
    assert not torch.allclose(noisy[:, 1], noisy[:, 0]) and float((noisy[:, 1] - noisy[:, 0]).abs().mean()) < 0.5


def test_lr_schedule_steps_once_per_optimizer_step_on_many_processes(monkeypatch):
    """accelerate steps a prepared scheduler num_processes times per optimizer step unless told not to: on 4 GPUs
    warm-up and decay ran 4x too fast. Simulated: the trainer's Accelerator with num_processes reported as 4."""
    from accelerate.state import AcceleratorState

    from moaw_core.training.trainer import lr_schedule, make_accelerator

    cfg = TrainConfig(lr=1.0, warmup=8, steps=32, lr_schedule="cosine", cpu_threads=1)
    acc = make_accelerator(cfg)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    model, opt, sched = acc.prepare(model, opt, lr_schedule(cfg, opt, {"start": 0.0}))
    monkeypatch.setattr(type(AcceleratorState()), "num_processes", property(lambda self: 4), raising=False)
    assert AcceleratorState().num_processes == 4
    lrs = []
    for _ in range(6):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert sched.scheduler.last_epoch == 6
    lr_at = sched.scheduler.lr_lambdas[0]
    assert lrs == pytest.approx([lr_at(s) for s in range(1, 7)])
    assert lrs[-1] < 0.9  # still warming up after 6 of 8 steps
