"""The image-to-video demo end to end on tiny random models (plumbing, outputs, report), a user's own pair,
the cases, and bad inputs."""
import json

import numpy as np
import pytest
import torch

from moaw_core.cli.demo import DemoConfig, config_from_args, run_demo


@pytest.fixture(scope="module")
def models(tiny_model_files):
    """The shared tiny files plus an image-to-video generator and the tracker made from it."""
    from moaw_core.engine import i2v
    from moaw_core.engine.checkpoint import load_backbone, save_model
    from moaw_core.tracking.codecs import PATCH_PCA_ID, TrackEncoding
    from moaw_core.tracking.tracker import MoawTracker

    gen, _ = load_backbone(tiny_model_files / "gen.safetensors")
    wide, layout = i2v.widen_for_i2v(gen)
    torch.manual_seed(0)
    with torch.no_grad():
        wide.patch_embedding.weight[:, 16:] = 0.05 * torch.randn_like(wide.patch_embedding.weight[:, 16:])
    save_model(tiny_model_files / "gen_i2v.safetensors", wide, "generator", PATCH_PCA_ID,
               extra_meta={"moaw.i2v": layout.to_json()})
    save_model(tiny_model_files / "trk_i2v.safetensors", MoawTracker.from_generator(wide, 32).backbone, "tracker",
               PATCH_PCA_ID, TrackEncoding(24.0, PATCH_PCA_ID, 16), video_channels=16,
               schedule={"parameterization": "flow", "steps": 1, "init_noise": "zeros"})
    return tiny_model_files


def _cfg(models, out, **kw):
    base = dict(out=str(out), generator=str(models / "gen_i2v.safetensors"), tracker=str(models / "trk_i2v.safetensors"),
                codec=str(models / "codec.safetensors"), cases=("pan_left", "object_right"), seeds=(0,), gen_steps=2,
                layers="block.1")
    base.update(kw)
    return DemoConfig(**base)


def test_demo_writes_report_gifs_and_grid(models, tmp_path):
    report = run_demo(_cfg(models, tmp_path), progress=False)
    for name in ("pan_left", "object_right"):
        assert (tmp_path / f"transfer_{name}.gif").stat().st_size > 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["layers"] == ["block.1"] == report["layers"]
    assert [r["kind"] for r in on_disk["runs"]] == ["camera", "object"]
    s = on_disk["summary"]
    assert s["motion_fidelity"]["plain"]["n"] == 2 and -1.0 <= s["motion_fidelity"]["injected"]["mean"] <= 1.0
    assert on_disk["rows"] == ["plain", "injected", "noise", "frozen", "reversed", "source"]
    assert s["motion_fidelity"]["source"]["mean"] > 0.95 > s["motion_fidelity"]["frozen"]["mean"]
    fa = s["field_agreement_moving"]
    assert fa["noise"]["mean"] <= 0.05 and "injected_minus_plain" in fa
    # frame 0 is held at the image's latent: its PSNR is the codec's reconstruction of the image, same in both runs
    assert s["frame0_psnr_db"]["plain"]["mean"] == pytest.approx(s["frame0_psnr_db"]["injected"]["mean"], abs=1e-3)
    assert s["hf_energy_ratio_injected_over_plain"]["mean"] > 0
    assert set(on_disk["per_group"]) >= {"kind:camera", "kind:object", "case:pan_left"}
    assert on_disk["timings_s"]["generations"] == 4 and on_disk["settings"]["denoise"] == 0.85


def test_demo_moft_and_det_rows_read_the_files_next_to_the_generator(models, tmp_path):
    """--methods moaw,moft,det: each method is its own row beside plain on the same cases and seeds; MOFT takes its
    block / channels / guidance from <generator>.moft.json and DeT its training from <generator>.det.json."""
    from moaw_core.engine.adapters import detect
    from moaw_core.engine.checkpoint import load_backbone
    from moaw_core.moft import MoftChannels, channels_path

    gen_path = models / "gen_i2v.safetensors"
    gen, _ = load_backbone(gen_path)
    chans = channels_path(gen_path)
    det = gen_path.with_suffix(".det.json")
    try:
        MoftChannels("block.1", 0.2, (0, 1, 2), (1.0, 1.0, 1.0), detect(gen).fingerprint(gen)).save(chans)
        det.write_text(json.dumps({"train": {"steps": 2}, "apply": {"fraction": 1.0}}))
        cfg = _cfg(models, tmp_path, cases=("object_right",), methods=("moaw", "moft", "det"), gen_steps=4)
        report = run_demo(cfg, progress=False)
    finally:
        chans.unlink(missing_ok=True)
        det.unlink(missing_ok=True)
    assert report["rows"][:4] == ["plain", "injected", "moft", "det"]
    run = report["runs"][0]
    assert run["moft"] != run["plain"] and run["det"] != run["plain"]
    assert run["moft"]["frame0_psnr_db"] == pytest.approx(run["plain"]["frame0_psnr_db"], abs=1e-3)  # frame 0 held
    moft, det_log = report["methods"]["moft"]["object_right"], report["methods"]["det"]["object_right"]
    assert moft["layer"] == "block.1" and moft["channels"] == [0, 1, 2] and moft["settings_file"] == str(chans)
    assert det_log["steps"] == 2 and det_log["train_s"] > 0 and det_log["settings_file"] == str(det)
    assert "det_minus_plain" in report["summary"]["motion_fidelity"] and report["timings_s"]["generations"] == 4
    assert (tmp_path / "transfer_object_right.gif").is_file()
    try:  # a bad settings file is an error naming the file
        det.write_text(json.dumps({"train": {"stpes": 2}}))
        with pytest.raises(ValueError, match=r"DeT settings \(.*gen_i2v.det.json\).*stpes"):
            run_demo(_cfg(models, tmp_path, cases=("object_right",), methods=("det",)), progress=False)
    finally:
        det.unlink(missing_ok=True)


def test_strength_zero_changes_nothing(models, tmp_path):
    report = run_demo(_cfg(models, tmp_path, strength=0.0, cases=("object_down",)), progress=False)
    run = report["runs"][0]
    assert run["plain"] == run["injected"]


def test_user_pair_is_resampled_and_said(models, tmp_path):
    from PIL import Image

    frames = tmp_path / "src"
    frames.mkdir()
    for t in range(11):  # 11 frames of 40x56: moved bars
        img = np.zeros((40, 56, 3), np.uint8)
        img[:, (3 * t) % 56:(3 * t) % 56 + 6] = 255
        Image.fromarray(img).save(frames / f"{t:03d}.png")
    Image.fromarray((np.random.default_rng(0).random((30, 50, 3)) * 255).astype(np.uint8)).save(tmp_path / "img.png")
    report = run_demo(_cfg(models, tmp_path / "out", source=str(frames), image=str(tmp_path / "img.png")), progress=False)
    assert [r["case"] for r in report["runs"]] == ["user"]
    assert "11 frames 56x40 -> 8 frames 64x64" in report["notes"][0] and "image 50x30 -> 64x64" in report["notes"][0]
    assert (tmp_path / "out" / "transfer_user.gif").is_file()


def test_demo_bad_inputs(models, tmp_path):
    with pytest.raises(FileNotFoundError, match="generator model file"):
        run_demo(_cfg(models, tmp_path, generator=str(tmp_path / "missing.safetensors")), progress=False)
    with pytest.raises(ValueError, match="unknown case"):
        run_demo(_cfg(models, tmp_path, cases=("nope",)), progress=False)
    with pytest.raises(ValueError, match="unknown layer"):
        run_demo(_cfg(models, tmp_path, layers="block.9"), progress=False)
    with pytest.raises(ValueError, match="source/image"):
        run_demo(_cfg(models, tmp_path, source=str(tmp_path)), progress=False)
    with pytest.raises(FileNotFoundError, match="image"):
        run_demo(_cfg(models, tmp_path, source=str(tmp_path), image=str(tmp_path / "none.png")), progress=False)
    with pytest.raises(ValueError, match="methods"):
        run_demo(_cfg(models, tmp_path, methods=("moaw", "magic")), progress=False)
    with pytest.raises(ValueError, match="image-to-video"):  # the unconditional generator cannot animate an image
        run_demo(_cfg(models, tmp_path, generator=str(models / "gen.safetensors")), progress=False)


def test_cases_restyle_keeps_the_layout():
    from moaw_core.data.demo_cases import build_case, restyle

    cam = build_case("pan_left", 100_000)
    assert cam.kind == "camera" and cam.source.shape == (8, 64, 64, 3) and cam.fg_mask is None
    assert not torch.allclose(cam.image, cam.source[0])  # a different image
    obj = build_case("object_right", 100_003)
    assert torch.allclose(obj.image, restyle(obj.source[0]))
    assert obj.fg_mask.shape == (8, 64, 64) and 0 < obj.fg_mask[0].mean() < 0.5
    # same layout: edges in the same places (correlation of gradient magnitudes), new colours
    g = [np.hypot(*np.gradient(x.mean(-1).numpy())) for x in (obj.image, obj.source[0])]
    assert np.corrcoef(g[0].ravel(), g[1].ravel())[0, 1] > 0.5
    assert float((obj.image - obj.source[0]).abs().mean()) > 0.1
    with pytest.raises(ValueError, match="case"):
        build_case("dolly", 0)


def test_demo_scores_with_the_fixed_metric_and_its_controls():
    """The demo's scorer (metrics.score_transfer on the case's object mask): the source itself scores high, a
    flat video, the frozen first frame, the reversed source and noise score low on every figure that has a bound
    in docs/METRICS.md; the figures are finite."""
    from moaw_core.cli.demo import score_run, source_motion
    from moaw_core.data.demo_cases import build_case
    from moaw_core.metrics import control_videos

    case = build_case("object_right", 100_003)
    src = source_motion(case)
    assert src.query_region == "foreground mask"
    same = score_run(case, src, case.source)
    assert same["motion_fidelity"] > 0.95 and same["field_agreement_moving"] > 0.9
    lows = {"flat": score_run(case, src, torch.zeros_like(case.source)),
            **{k: score_run(case, src, v) for k, v in control_videos(case.source.numpy()).items()}}
    for name, s in lows.items():
        assert all(np.isfinite(s[k]) for k in ("motion_fidelity", "trajectory_shape", "frame0_psnr_db")), name
        assert s["motion_fidelity"] <= 0.75 and s["field_agreement_moving"] <= 0.05, (name, s)


def test_demo_cli_defaults_are_the_config_defaults():
    from moaw_core.__main__ import build_parser
    args = build_parser().parse_args(["demo"])
    d = DemoConfig()
    assert (args.normalize, args.remove_content, args.strength, args.end, args.layers, args.denoise,
            args.keep_first_frame) == (d.normalize, d.remove_content, d.strength, d.end, d.layers, d.denoise,
                                       d.keep_first_frame)
    assert build_parser().parse_args(["demo", "--no-remove-content"]).remove_content is False
    assert build_parser().parse_args(["demo", "--source", "a.mp4", "--image", "b.png"]).image == "b.png"
    assert config_from_args(build_parser().parse_args(["demo"])).methods == d.methods
