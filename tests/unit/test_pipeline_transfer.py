"""The `transfer` verb on a real diffusers WanPipeline (tiny random-init components, saved and loaded with
save_pretrained / from_pretrained): outputs, injection reaching the generation, cond-only injection under
CFG, strength 0 == plain, and bad inputs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_pipe_dir(tmp_path_factory):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    from moaw_core.tracking.tracker import build_wan

    torch.manual_seed(0)
    vocab = {"[PAD]": 0, "[UNK]": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate("a the fox red running".split())}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")
    te = UMT5EncoderModel(UMT5Config(vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                                     relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2)).eval()
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True]).eval()
    tr = build_wan(dim=128, num_layers=3, ffn_dim=64, text_dim=32, seed=1).eval()
    pipe = WanPipeline(tokenizer=tok, text_encoder=te, vae=vae, transformer=tr,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    d = tmp_path_factory.mktemp("wan_pipe")
    pipe.save_pretrained(d)
    src = d.parent / "source_frames"
    src.mkdir()
    from PIL import Image

    from moaw_core.data.sources import synthetic_source
    clip = synthetic_source(100_000, camera="static", objects="right", speed=2.0)
    for i, f in enumerate(clip.video):
        Image.fromarray((f.numpy() * 255).astype("uint8")).save(src / f"{i:03d}.png")
    return d, src


def _cfg(tiny_pipe_dir, tmp_path, **kw):
    from moaw_core.cli.transfer import TransferConfig
    d, src = tiny_pipe_dir
    base = dict(pipeline=str(d), source=str(src), prompt="a red fox", frames=5, height=32, width=32, steps=2,
                guidance=2.0, device="cpu", grid=4, out=str(tmp_path / "out"), layers="block.0-2", strength=1.0,
                end=1.0, normalize=False, remove_content=False)
    base.update(kw)
    return TransferConfig(**base)


def test_cli_writes_outputs(tiny_pipe_dir, tmp_path):
    from moaw_core.__main__ import main
    d, src = tiny_pipe_dir
    out = tmp_path / "cli"
    rc = main(["transfer", "--pipeline", str(d), "--source", str(src), "--prompt", "a red fox", "--frames", "5",
               "--height", "32", "--width", "32", "--steps", "2", "--device", "cpu", "--grid", "4", "--out", str(out),
               "--save-features"])
    assert rc == 0
    for name in ("transfer.gif", "plain.gif", "injected.gif", "report.json", "features.safetensors"):
        assert (out / name).is_file(), name
    r = json.loads((out / "report.json").read_text())
    assert r["layers"] == ["block.1"] and r["feature_source"].startswith("training-free")
    for kind in ("plain", "injected"):
        assert np.isfinite(r["scores"][kind]["motion_fidelity"]) and np.isfinite(r["scores"][kind]["trajectory_shape"])
    assert r["settings"]["remove_content"] is True  # the demo's defaults
    assert r["feature_steps"] == 1 and r["feature_bytes"] > 0  # only the window's steps (first half of 2) are kept


def test_injection_reaches_the_pipeline_and_strength_zero_is_plain(tiny_pipe_dir, tmp_path):
    from moaw_core.cli import transfer as P
    from moaw_core.data.real import load_video
    from moaw_core.engine.inject import InjectConfig
    cfg = _cfg(tiny_pipe_dir, tmp_path)
    pipe = P.load_pipeline(cfg.pipeline, "cpu", torch.float32)
    src = P.resample_frames(load_video(cfg.source), cfg.frames, cfg.height, cfg.width)
    lat = P.encode_source(pipe, src)
    assert lat.shape == (1, 16, 2, 4, 4)
    sigmas = P.schedule_sigmas(pipe, cfg.steps, "cpu")
    feats, layers = P.extract_features(pipe, cfg, lat, sigmas, "cpu", torch.float32)
    assert layers == ["block.0", "block.1", "block.2"] and feats.steps == (0, 1)
    plain = P.generate(pipe, cfg)
    assert np.array_equal(plain, P.generate(pipe, cfg))  # same seed, same video
    zero = P.generate(pipe, cfg, feats, InjectConfig(layers=tuple(layers), strength=0.0))
    assert np.array_equal(zero, plain)
    cond = P.generate(pipe, cfg, feats, InjectConfig(layers=tuple(layers), strength=1.0, branch="cond"))
    both = P.generate(pipe, cfg, feats, InjectConfig(layers=tuple(layers), strength=1.0, branch="both"))
    assert np.abs(cond - plain).mean() > 1e-4 and np.abs(both - cond).mean() > 1e-5


@pytest.mark.parametrize("field,value,err,match", [
    ("pipeline", "/nonexistent/pipe", FileNotFoundError, "pipeline"),
    ("source", "/nonexistent/video.mp4", FileNotFoundError, "source"),
    ("frames", 6, ValueError, "4k\\+1"),
    ("height", 30, ValueError, "multiples of 16"),
    ("steps", 0, ValueError, "steps"),
    ("tracker", "/nonexistent/tracker.safetensors", FileNotFoundError, "tracker"),
    ("dtype", "int8", ValueError, "dtype"),
    ("start", 0.9, ValueError, "window"),
])
def test_bad_inputs(tiny_pipe_dir, tmp_path, field, value, err, match):
    from moaw_core.cli.transfer import run_transfer
    with pytest.raises(err, match=match):
        run_transfer(dataclasses.replace(_cfg(tiny_pipe_dir, tmp_path), **{field: value}))


def test_folder_without_model_index(tmp_path, tiny_pipe_dir):
    from moaw_core.cli.transfer import run_transfer
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="model_index.json"):
        run_transfer(dataclasses.replace(_cfg(tiny_pipe_dir, tmp_path), pipeline=str(tmp_path / "empty")))


def test_tracker_features_from_a_moaw_tracker_of_the_pipeline(tiny_pipe_dir, tmp_path):
    from moaw_core.cli import transfer as P
    from moaw_core.engine.checkpoint import save_model
    from moaw_core.tracking.codecs import TrackEncoding
    from moaw_core.data.real import load_video
    from moaw_core.tracking.tracker import MoawTracker
    cfg = _cfg(tiny_pipe_dir, tmp_path)
    pipe = P.load_pipeline(cfg.pipeline, "cpu", torch.float32)
    tracker = MoawTracker.from_generator(pipe.transformer, 32)
    path = save_model(tmp_path / "trk.safetensors", tracker.backbone, "tracker", "wan-vae", TrackEncoding(24.0, "wan-vae", 16),
                      16, {"parameterization": "flow", "loss": "l1", "steps": 1, "init_noise": "zeros"}, "test", 1)
    cfg = dataclasses.replace(cfg, tracker=str(path))
    lat = P.encode_source(pipe, P.resample_frames(load_video(cfg.source), cfg.frames, cfg.height, cfg.width))
    feats, layers = P.extract_features(pipe, cfg, lat, P.schedule_sigmas(pipe, 2, "cpu"), "cpu", torch.float32)
    assert feats.source.startswith("tracker") and feats.steps == (0,) and set(feats.layers) == set(layers)
    from moaw_core.engine.inject import InjectConfig
    out = P.generate(pipe, cfg, feats, InjectConfig(layers=tuple(layers), strength=1.0))
    assert np.isfinite(out).all()


def test_moft_method_guides_the_pipeline_and_weight_zero_is_plain(tiny_pipe_dir, tmp_path):
    from moaw_core.__main__ import main
    from moaw_core.cli import transfer as P
    from moaw_core.data.real import load_video
    cfg = _cfg(tiny_pipe_dir, tmp_path, method="moft", steps=4, moft_start=0.0, moft_end=0.5, moft_weight=1e4)
    pipe = P.load_pipeline(cfg.pipeline, "cpu", torch.float32)
    lat = P.encode_source(pipe, P.resample_frames(load_video(cfg.source), cfg.frames, cfg.height, cfg.width))
    ref = P.moft_reference(pipe, cfg, lat, "cpu", torch.float32)
    assert ref.layer == "block.1" and ref.values.shape[0] == 2
    plain = P.generate(pipe, cfg)
    guided, losses = P.generate_moft(pipe, cfg, ref, "cpu")
    assert sorted(losses) == [0, 1] and np.abs(guided - plain).mean() > 1e-5
    zero, none = P.generate_moft(pipe, dataclasses.replace(cfg, moft_weight=0.0), ref, "cpu")
    assert none == {} and np.array_equal(zero, plain)
    out = tmp_path / "cli_moft"
    d, src = tiny_pipe_dir
    rc = main(["transfer", "--pipeline", str(d), "--source", str(src), "--prompt", "a red fox", "--frames", "5",
               "--height", "32", "--width", "32", "--steps", "4", "--device", "cpu", "--grid", "4", "--out", str(out),
               "--method", "moft", "--moft-start", "0.0"])
    assert rc == 0 and (out / "moft.gif").is_file()
    r = json.loads((out / "report.json").read_text())
    assert r["method"] == "moft" and np.isfinite(r["scores"]["moft"]["motion_fidelity"]) and r["moft"]["losses"]


@pytest.mark.parametrize("field,value,err,match", [
    ("method", "dmt", ValueError, "method"),
    ("moft_channels", "/nonexistent/x.moft.json", FileNotFoundError, "moft_channels"),
    ("moft_start", 0.9, ValueError, "window"),
    ("moft_loss", "l1", ValueError, "loss"),
])
def test_moft_bad_inputs(tiny_pipe_dir, tmp_path, field, value, err, match):
    from moaw_core.cli.transfer import run_transfer
    with pytest.raises(err, match=match):
        run_transfer(dataclasses.replace(_cfg(tiny_pipe_dir, tmp_path, method="moft"), **{field: value}))
