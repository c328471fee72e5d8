"""Tests for moaw_core.data.synth: determinism, exactness of the ground truth, motion presets, dataset."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moaw_core.data.synth import (CAMERA_MOTION_CLASSES, OBJECT_MOTION_CLASSES, CameraMotion, LayerMotion,
                             SynthConfig, SynthDataset, TextureBank, render_clip)
from moaw_core.tracking.tracks import dense_to_flow, flows_to_tracks, pixel_grid, unpack_tracks

CFG = SynthConfig(frames=6, height=48, width=48)


def bilinear(img, xy):
    """Sample img [H,W,3] at xy [...,2] px (align_corners, border)."""
    H, W = img.shape[:2]
    g = torch.stack([xy[..., 0] / (W - 1) * 2 - 1, xy[..., 1] / (H - 1) * 2 - 1], -1).reshape(1, 1, -1, 2)
    out = F.grid_sample(img.permute(2, 0, 1)[None], g, align_corners=True, padding_mode="border")
    return out[0, :, 0].T.reshape(*xy.shape[:-1], 3)


def warp_errors(clip, shift=(0.0, 0.0)):
    """|frame_t(xy[t]) - frame_0| at visible pixels whose bilinear footprint lies in their own layer."""
    tr, T, H, W = clip.tracks, *clip.video.shape[:3]
    errs = []
    for t in range(1, T):
        xy = tr.xy[t] + torch.tensor(shift)
        x0 = xy[..., 0].floor().long().clamp(0, W - 2)
        y0 = xy[..., 1].floor().long().clamp(0, H - 2)
        li = clip.layer_index[t]
        own = clip.layer_index[0]
        same = ((li[y0, x0] == own) & (li[y0, x0 + 1] == own) & (li[y0 + 1, x0] == own)
                & (li[y0 + 1, x0 + 1] == own))
        m = tr.visible[t] & same
        errs.append((bilinear(clip.video[t], xy) - clip.video[0]).abs().amax(-1)[m])
    return torch.cat(errs)


def test_same_seed_identical_different_seed_differs():
    a, b, c = render_clip(3, CFG), render_clip(3, CFG), render_clip(4, CFG)
    assert torch.equal(a.video, b.video) and torch.equal(a.tracks.xy, b.tracks.xy)
    assert torch.equal(a.tracks.visible, b.tracks.visible) and torch.equal(a.layer_index, b.layer_index)
    assert not torch.equal(a.video, c.video) and not torch.equal(a.tracks.xy, c.tracks.xy)


def test_clip_shapes_and_frame_zero():
    clip = render_clip(0, CFG)
    T, H, W = 6, 48, 48
    assert clip.video.shape == (T, H, W, 3) and clip.layer_index.shape == (T, H, W)
    assert clip.video.dtype == torch.float32 and 0 <= clip.video.min() and clip.video.max() <= 1
    assert torch.equal(clip.tracks.xy[0], pixel_grid(H, W)) and clip.tracks.visible[0].all()
    depth0 = torch.tensor(clip.layer_depths)[clip.layer_index[0]]
    assert torch.allclose(clip.tracks.depth[0], depth0)
    assert 1 <= len(clip.layers) <= 3 and clip.layer_index.max() <= len(clip.layers)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tracks_warp_frame_t_back_to_frame_0(seed):
    clip = render_clip(seed, CFG)
    err = warp_errors(clip)
    assert err.numel() > 3000
    assert err.mean() < 0.012 and err.max() < 0.08
    # The check can fail: tracks off by 1.5 px give clearly larger errors.
    assert warp_errors(clip, shift=(1.5, 0.0)).mean() > 3 * err.mean()


def test_integer_pan_is_exact():
    clip = render_clip(5, CFG, camera=CameraMotion.pan(2.0, -1.0, 6), background_only=True)
    tr = clip.tracks
    expected = pixel_grid(48, 48)[None] - torch.arange(6.0)[:, None, None, None] * torch.tensor([2.0, -1.0])
    assert torch.allclose(tr.xy, expected, atol=1e-5)
    x, y = expected[..., 0], expected[..., 1]
    assert torch.equal(tr.visible, (x >= 0) & (x <= 47) & (y >= 0) & (y <= 47))
    for t in range(6):
        xi, yi = tr.xy[t][tr.visible[t]].round().long().unbind(-1)
        assert torch.allclose(clip.video[t][yi, xi], clip.video[0][tr.visible[t]], atol=1e-6)


def test_flows_to_tracks_recovers_a_panning_clip():
    clip = render_clip(6, CFG, camera=CameraMotion.pan(-1.3, 0.7, 6), background_only=True)
    flows = torch.stack([dense_to_flow(clip.tracks, t) for t in range(5)])
    out = flows_to_tracks(flows)
    assert torch.equal(out.visible, clip.tracks.visible)
    assert (out.xy - clip.tracks.xy)[out.visible].abs().max() < 1e-3


def test_zoom_maps_about_centre_and_scales_depth():
    clip = render_clip(1, CFG, camera=CameraMotion.zoom_by(1.1, 6), background_only=True)
    c = torch.tensor([23.5, 23.5])
    z = torch.tensor([1.1 ** t for t in range(6)])[:, None, None, None]
    assert torch.allclose(clip.tracks.xy, c + z * (pixel_grid(48, 48) - c), atol=1e-4)
    assert torch.allclose(clip.tracks.depth, 10.0 / z[..., 0].expand(6, 48, 48), rtol=1e-5)
    assert clip.tracks.visible[5].float().mean() < 0.5  # zoomed in 1.61x: the rim has left the frame


def test_occlusion_by_a_moving_object():
    layer = LayerMotion.direction("right", 6, speed=4.0, center=(14.0, 24.0))
    clip = render_clip(2, CFG, camera=CameraMotion.static(6), layers=[layer])
    tr, own = clip.tracks, clip.layer_index[0]
    obj = own == 1
    assert obj.sum() > 50 and torch.allclose(tr.displacement()[5][obj], torch.tensor([20.0, 0.0]), atol=1e-4)
    assert tr.visible[:, obj].all()
    # Background under the object's final position is hidden, and it is exactly where the object is.
    hidden = (own == 0) & ~tr.visible[5]
    assert hidden.sum() > 50 and torch.equal(hidden, clip.layer_index[5] == 1)


@pytest.mark.parametrize("name", CAMERA_MOTION_CLASSES)
def test_camera_presets_move_content(name):
    clip = render_clip(0, SynthConfig(frames=4, height=32, width=32),
                       camera=CameraMotion.preset(name, 4), background_only=True)
    d = clip.tracks.displacement()[3]
    x = pixel_grid(32, 32)[..., 0] - 15.5
    dx, dy, radial = float(d[..., 0].mean()), float(d[..., 1].mean()), float((d[..., 0] * x).mean())
    want = {"pan_left": dx > 1, "pan_right": dx < -1, "tilt_up": dy > 1, "tilt_down": dy < -1,
            "zoom_in": radial > 1, "zoom_out": radial < -1}
    assert want[name], (dx, dy, radial)


@pytest.mark.parametrize("name", OBJECT_MOTION_CLASSES)
def test_object_directions(name):
    clip = render_clip(0, SynthConfig(frames=4, height=32, width=32), camera=CameraMotion.static(4),
                       layers=[LayerMotion.direction(name, 4, speed=2.0, center=(16.0, 16.0))])
    d = clip.tracks.displacement()[3][clip.layer_index[0] == 1].mean(0)
    want = {"left": (-6, 0), "right": (6, 0), "up": (0, -6), "down": (0, 6)}[name]
    assert torch.allclose(d, torch.tensor(want, dtype=torch.float32), atol=1e-4)


def test_scene_does_not_depend_on_motion():
    a = render_clip(7, CFG, camera=CameraMotion.preset("pan_left", 6), background_only=True)
    b = render_clip(7, CFG, camera=CameraMotion.preset("zoom_out", 6), background_only=True)
    assert torch.equal(a.video[0], b.video[0]) and not torch.equal(a.video[5], b.video[5])


def test_bad_motions_and_configs():
    with pytest.raises(ValueError, match="camera: expected 6 frames"):
        render_clip(0, CFG, camera=CameraMotion.static(5))
    with pytest.raises(ValueError, match="CameraMotion: expected identity at frame 0"):
        CameraMotion(((1.0, 0.0),), (1.0,), (0.0,))
    with pytest.raises(ValueError, match="LayerMotion: expected equal non-zero lengths"):
        LayerMotion(((0.0, 0.0),), (0.0, 0.0), (1.0,))
    with pytest.raises(ValueError, match="layers: expected None with background_only=True"):
        render_clip(0, CFG, layers=[LayerMotion.static(6)], background_only=True)
    with pytest.raises(TypeError, match="layers\\[0\\]: expected LayerMotion"):
        render_clip(0, CFG, layers=[CameraMotion.static(6)])
    with pytest.raises(ValueError, match="name: expected one of"):
        CameraMotion.preset("dolly", 6)
    with pytest.raises(ValueError, match="SynthConfig.num_layers"):
        SynthConfig(num_layers=(3, 1))
    with pytest.raises(FileNotFoundError, match="texture_dir"):
        render_clip(0, SynthConfig(frames=4, height=16, width=16, texture_dir="/nonexistent/textures",
                                   real_texture_prob=1.0))


def test_real_textures_from_a_folder(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    img = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "tex.png"), cv2.GaussianBlur(img, (5, 5), 0))
    cfg = SynthConfig(frames=4, height=32, width=32, texture_dir=str(tmp_path), real_texture_prob=1.0)
    bank = TextureBank(str(tmp_path))
    a, b = render_clip(0, cfg, textures=bank), render_clip(0, cfg)
    assert torch.equal(a.video, b.video) and len(bank.frames()) == 1
    assert not torch.equal(a.video, render_clip(0, SynthConfig(frames=4, height=32, width=32)).video)


def test_dataset_items_and_collation():
    ds = SynthDataset(SynthConfig(frames=4, height=32, width=32), length=3, seed=1)
    video, packed = ds[1]
    assert len(ds) == 3 and video.shape == (4, 32, 32, 3) and packed.shape == (4, 32, 32, 4)
    assert torch.equal(ds[1][0], video) and not torch.equal(ds[0][0], video)
    tr = unpack_tracks(packed)
    clip = render_clip(ds.clip_seed(1), ds.cfg)
    assert torch.equal(tr.xy, clip.tracks.xy) and torch.equal(tr.visible, clip.tracks.visible)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 4, 32, 32, 3) and batch[1].shape == (2, 4, 32, 32, 4)
    with pytest.raises(IndexError):
        ds[3]
    # Depth = layer depth / zoom: background 10 and zoom within [1/1.15, 1.15] by default.
    assert tr.depth.min() >= 2.0 / 1.15 - 1e-4 and tr.depth.max() <= 10.0 * 1.15 + 1e-4


def test_still_camera_clips():
    from moaw_core.data.synth import SynthConfig, render_clip, still_camera

    cfg = SynthConfig(frames=4, height=32, width=32)
    seeds = [s for s in range(40) if still_camera(s, 0.3)]
    assert 4 <= len(seeds) <= 24  # about 30 %, deterministic per seed
    for s in seeds[:3]:
        moving, still = render_clip(s, cfg), render_clip(s, SynthConfig(frames=4, height=32, width=32, still_camera=0.3))
        assert torch.equal(moving.video[0], still.video[0])  # the same scene
        assert still.camera == CameraMotion.static(4) and still.layers == moving.layers
        background = still.layer_index[0] == 0  # frame-0 pixels of the background layer
        assert background.any() and still.tracks.displacement()[:, background].abs().max() == 0
    assert render_clip(seeds[0], SynthConfig(frames=4, height=32, width=32, still_camera=1.0)).camera \
        == CameraMotion.static(4)
    assert not still_camera(seeds[0], 0.0)
    with pytest.raises(ValueError, match="still_camera"):
        SynthConfig(still_camera=1.5)
