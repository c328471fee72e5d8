"""Appearance metrics for image-to-video and injection checks: PSNR / SSIM of frame 0 against a given image,
high-frequency energy (and its ratio between two videos: "injection adds no block texture"), and temporal
consistency as the photometric error along the video's own motion.

Images are [H, W, 3] and videos [T, H, W, 3], float RGB in [0, 1] (numpy or torch); numpy / OpenCV only.
"""

from __future__ import annotations

import cv2
import numpy as np

from moaw_core.metrics import _arrays

PSNR_CAP_DB = 100.0  # identical images: PSNR is infinite; reported as this cap so reports stay valid JSON


def _image(x, name: str) -> np.ndarray:
    a = _arrays.as_np(x, name)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{name}: expected [H, W, 3] float RGB in [0, 1], got shape {tuple(a.shape)}")
    return _arrays.video(a[None], name)[0].astype(np.float64)


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio in dB (data range 1) between two images [H, W, 3]; capped at ``PSNR_CAP_DB``."""
    x, y = _image(a, "a"), _image(b, "b")
    _arrays.same_shape(x, y, "a", "b")
    mse = float(np.mean((x - y) ** 2))
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else float(-10.0 * np.log10(mse))


def ssim(a, b) -> float:
    """Structural similarity (Wang et al. 2004) between two images [H, W, 3]: Gaussian window sigma 1.5
    (11 x 11), K1 0.01, K2 0.03, data range 1, computed per channel and averaged over channels and pixels."""
    x, y = _image(a, "a"), _image(b, "b")
    _arrays.same_shape(x, y, "a", "b")
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(z):
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def frame0_fidelity(video, image) -> dict:
    """Image-to-video appearance: frame 0 of ``video`` [T, H, W, 3] against ``image`` [H, W, 3].

    Returns:
        dict(psnr_frame0 (dB, capped at PSNR_CAP_DB), ssim_frame0).
    """
    v = _arrays.video(video, "video")
    img = _image(image, "image")
    _arrays.same_shape(v[0], img, "video frame", "image")
    return {"psnr_frame0": psnr(v[0], img), "ssim_frame0": ssim(v[0], img)}


def hf_energy(video, sigma: float = 1.0) -> float:
    """High-frequency energy: mean squared difference between each grey frame and its Gaussian blur (sigma px).

    Patch-codec block texture and noise raise it; smooth content keeps it low. Args: video [T, H, W, 3].
    """
    if sigma <= 0:
        raise ValueError(f"sigma: expected > 0, got {sigma}")
    v = _arrays.video(video, "video")
    grey = v.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float(np.mean([(g - cv2.GaussianBlur(g, (0, 0), sigma)) ** 2 for g in grey]))


def hf_energy_ratio(video_a, video_b, sigma: float = 1.0) -> float:
    """``hf_energy(video_a) / hf_energy(video_b)``: > 1 when A has more fine/block texture than B (e.g. injected
    vs plain generation); inf when B has none and A some, 1 when both have none."""
    ea, eb = hf_energy(video_a, sigma), hf_energy(video_b, sigma)
    if eb <= 1e-12:
        return 1.0 if ea <= 1e-12 else float("inf")
    return ea / eb


def temporal_consistency(video, flows=None, preset: str = "medium") -> dict:
    """Photometric error along the video's own motion: frame t+1 warped back by the flow t -> t+1 against
    frame t, mean absolute RGB difference over every pixel whose target stays inside the frame (none is
    dropped for failing a consistency check, so random content cannot hide behind its own lost tracks).

    A still video is perfectly consistent (error 0): this measures flicker and temporal noise, not motion.

    Args:
        video: [T, H, W, 3], T >= 2. flows: optional precomputed [T-1, H, W, 2] forward flows (default DIS).
        preset: DIS preset when ``flows`` is None.
    Returns:
        dict(photometric_error (mean |difference| in [0, 1] units), temporal_consistency = 1 - error,
        inside_fraction (pixels whose flow target is inside the frame)).
    """
    from moaw_core.tracking.cv_trackers import video_flows

    v = _arrays.video(video, "video", min_frames=2)
    T, H, W = v.shape[:3]
    fw = video_flows(v, preset, backward=False)[0] if flows is None else _arrays.as_np(flows, "flows", 4, 2)
    if fw.shape != (T - 1, H, W, 2):
        raise ValueError(f"flows: expected shape {(T - 1, H, W, 2)}, got {tuple(fw.shape)}")
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    errs, inside = [], []
    for t in range(T - 1):
        mx, my = xs + fw[t, ..., 0].astype(np.float32), ys + fw[t, ..., 1].astype(np.float32)
        ok = (mx >= 0) & (mx <= W - 1) & (my >= 0) & (my <= H - 1)
        warped = cv2.remap(v[t + 1], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errs.append(np.abs(warped - v[t]).mean(-1)[ok])
        inside.append(ok.mean())
    e = np.concatenate(errs)
    err = float(e.mean()) if e.size else float("nan")
    return {"photometric_error": err, "temporal_consistency": 1.0 - err, "inside_fraction": float(np.mean(inside))}
