"""Known answers and bad inputs for the video-level metrics: motion-field agreement, appearance (PSNR, SSIM,
high-frequency energy, temporal consistency), controls and the `score_transfer` / `prepare_source` API."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

import moaw_core.metrics as M
from moaw_core.data.sources import synthetic_source


def _clip(seed=100_000, objects="right"):
    return synthetic_source(seed, camera="static", objects=objects).video.numpy()


# ------------------------------------------------------------------ motion-field agreement
def test_field_agreement_known_answers():
    rng = np.random.default_rng(0)
    src = np.zeros((3, 10, 12, 2))
    src[:, 2:6, 3:8] = rng.normal(0, 2, (3, 4, 5, 2)) + np.array([3.0, 0.0])
    same = M.motion_field_agreement(src, src)
    assert same["field_agreement_moving"] == 1.0 and same["field_agreement_frame"] == 1.0
    still = M.motion_field_agreement(src, np.zeros_like(src))
    assert still["relative_epe_moving"] == pytest.approx(1.0) and still["field_agreement_moving"] == 0.0
    assert still["gen_motion_moving"] == 0.0 and still["src_motion_moving"] > 0.5
    half = M.motion_field_agreement(src, 0.5 * src)
    assert half["field_agreement_frame"] == pytest.approx(0.5)
    assert M.motion_field_agreement(src, -src)["relative_epe_frame"] == pytest.approx(2.0)
    assert M.motion_field_agreement(src, -src)["field_agreement_frame"] == 0.0
    # A static background cannot carry the moving-region figure: noise there only lowers the frame figure.
    noisy = src.copy()
    noisy[:, 7:] = rng.normal(0, 3, noisy[:, 7:].shape)
    r = M.motion_field_agreement(src, noisy, region=np.linalg.norm(src, axis=-1) > 0.5)
    assert r["field_agreement_moving"] == 1.0 and r["field_agreement_frame"] < 0.5


def test_field_agreement_still_source_and_bad_inputs():
    z = np.zeros((2, 4, 4, 2))
    r = M.motion_field_agreement(z, z + np.array([0.05, 0.0]))
    assert np.isnan(r["field_agreement_moving"]) and r["moving_fraction"] == 0.0
    assert r["relative_epe_frame"] == pytest.approx(0.5)  # normalised by the 0.1 px floor
    with pytest.raises(ValueError, match="gen_flows: expected shape"):
        M.motion_field_agreement(z, z[:1])
    with pytest.raises(ValueError, match="src_flows: expected 4 dims"):
        M.motion_field_agreement(z[0], z[0])
    with pytest.raises(ValueError, match="region: expected shape"):
        M.motion_field_agreement(z, z, region=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="moving_px"):
        M.moving_region(z, -1)


# ------------------------------------------------------------------ appearance
def _ssim_reference(a, b):
    """Wang et al. 2004 with scipy's Gaussian filter (radius 5 = 11 taps, reflect borders)."""
    out = []
    for c in range(3):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)

        def g(z):
            return gaussian_filter(z, 1.5, truncate=5 / 1.5, mode="reflect")

        mx, my = g(x), g(y)
        vx, vy, cxy = g(x * x) - mx ** 2, g(y * y) - my ** 2, g(x * y) - mx * my
        c1, c2 = 1e-4, 9e-4
        out.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(out))


def test_psnr_ssim_known_answers_and_reference():
    v = _clip()
    img = v[0]
    assert M.psnr(img, img) == M.appearance.PSNR_CAP_DB and M.ssim(img, img) == pytest.approx(1.0)
    shifted = np.clip(img + 0.1, 0, 1)
    mse = np.mean((shifted - img) ** 2)
    assert M.psnr(img, shifted) == pytest.approx(-10 * np.log10(mse))
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.1, img.shape), 0, 1).astype(np.float32)
    assert M.ssim(img, noisy) == pytest.approx(_ssim_reference(img, noisy), abs=1e-6)
    assert M.ssim(img, noisy) < 0.9
    r = M.frame0_fidelity(torch.from_numpy(v), img)
    assert r["psnr_frame0"] == M.appearance.PSNR_CAP_DB and r["ssim_frame0"] == pytest.approx(1.0)
    assert M.frame0_fidelity(v, noisy)["ssim_frame0"] == pytest.approx(M.ssim(img, noisy))


def test_hf_energy_ratio_sees_block_texture():
    rng = np.random.default_rng(0)
    smooth = np.stack([gaussian_filter(rng.random((64, 64, 3)), (3, 3, 0)) for _ in range(4)]).astype(np.float32)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    blocks = np.kron(rng.random((4, 16, 16, 3)), np.ones((1, 4, 4, 1))).astype(np.float32)  # 4x4 patch texture
    assert M.hf_energy_ratio(0.5 * smooth + 0.5 * blocks, smooth) > 3.0
    assert M.hf_energy_ratio(smooth, smooth) == pytest.approx(1.0)
    flat = np.full((2, 8, 8, 3), 0.5, np.float32)
    assert M.hf_energy_ratio(flat, flat) == 1.0 and M.hf_energy_ratio(blocks[:2, :8, :8], flat) == float("inf")
    with pytest.raises(ValueError, match="sigma"):
        M.hf_energy(flat, sigma=0)


def test_temporal_consistency():
    v = _clip()
    good = M.temporal_consistency(v)
    noise = M.temporal_consistency(M.uniform_noise(v))
    assert good["photometric_error"] < 0.03 and noise["photometric_error"] > 0.2
    assert M.temporal_consistency(M.frozen(v))["photometric_error"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="T>=2"):
        M.temporal_consistency(v[:1])
    with pytest.raises(ValueError, match="flows: expected shape"):
        M.temporal_consistency(v, flows=np.zeros((2, 64, 64, 2)))


def test_appearance_bad_inputs():
    img = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="b: expected shape"):
        M.psnr(img, np.zeros((8, 9, 3), np.float32))
    with pytest.raises(ValueError, match=r"a: expected \[H, W, 3\]"):
        M.ssim(np.zeros((8, 8)), img)
    with pytest.raises(ValueError, match="values in"):
        M.psnr(img + 255, img)
    with pytest.raises(ValueError, match="image: expected shape"):
        M.frame0_fidelity(np.zeros((2, 8, 8, 3), np.float32), np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        M.hf_energy(np.zeros((2, 8, 8, 3), np.uint8))


# ------------------------------------------------------------------ controls and the scorer API
def test_controls_shapes_and_seeds():
    v = _clip()
    c = M.control_videos(v, seed=3)
    assert set(c) == set(M.CONTROLS)
    assert all(x.shape == v.shape and x.dtype == np.float32 for x in c.values())
    assert (c["frozen"] == v[0]).all() and (c["reversed"][0] == v[-1]).all()
    assert (c["noise"] == M.uniform_noise(v, seed=3)).all() and not (c["noise"] == M.uniform_noise(v, 4)).all()
    assert M.recolour(v).min() >= 0 and M.recolour(v).max() <= 1


def test_score_transfer_api():
    v = _clip()
    mask = np.zeros(v.shape[1:3])
    mask[20:40, 20:40] = 1
    s = M.score_transfer(torch.from_numpy(v), v, return_tracks=True)
    assert s["motion_fidelity"] == pytest.approx(1.0) and s["query_region"] == "moving points"
    assert s["gen_points"].shape == (int(s["num_points"]), 8, 2) and s["tracker"] == "dis"
    src = M.prepare_source(v, mask, grid=6)
    assert src.query_region == "foreground mask" and len(src.queries) == 36
    assert M.score_transfer(src, v)["num_points"] == 36
    per_frame = np.repeat(mask[None], 8, 0)
    assert M.prepare_source(v, per_frame).region.shape == (7, 64, 64)
    lk = M.score_transfer(v, v, tracker="lk")
    assert lk["tracker"] == "lk" and 0 < lk["motion_fidelity"] <= 1
    still = M.score_transfer(M.frozen(v), v)  # a still source: the whole grid, no moving region
    assert still["query_region"] == "full frame" and np.isnan(still["field_agreement_moving"])


def test_score_transfer_bad_inputs():
    v = _clip()
    with pytest.raises(ValueError, match="generated_video: expected shape"):
        M.score_transfer(v, v[:4])
    with pytest.raises(ValueError, match="source_video: expected"):
        M.score_transfer(v[0], v)
    with pytest.raises(ValueError, match="tracker: expected one of"):
        M.score_transfer(v, v, tracker="raft")
    with pytest.raises(ValueError, match="fg_mask: expected"):
        M.score_transfer(v, v, fg_mask=np.ones((3, 3)))
    with pytest.raises(ValueError, match="grid"):
        M.prepare_source(v, grid=1)
    with pytest.raises(ValueError, match="leave at their defaults"):
        M.score_transfer(M.prepare_source(v), v, tracker="lk")
    with pytest.raises(ValueError, match="static_px"):
        M.score_transfer(v, v, static_px=-1)
    with pytest.raises(ValueError, match="lost: expected"):
        M.score_transfer(v, v, lost="drop")
    with pytest.raises(ValueError, match="at least 2 frames|T>=2"):
        M.score_transfer(v[:1], v[:1])
