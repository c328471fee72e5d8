"""Tests for moaw_core.data.scenes3d: exact tracks (warping frame 0 by the tracks reproduces frame t),
visibility under occlusion, parallax vs rotation geometry, determinism and bad input."""
import math

import pytest
import torch
import torch.nn.functional as F

from moaw_core.data.scenes3d import (Primitive, Scene3D, Scene3DConfig, Scenes3DDataset, cast, random_scene,
                                     render_scene, rotation_matrix, shade_points)
from moaw_core.data.textures import random_texture
from moaw_core.tracking.tracks import pixel_grid, unpack_tracks

CFG = Scene3DConfig(frames=6, height=48, width=48)
F64 = torch.float64


def bilinear(img, xy):
    H, W = img.shape[:2]
    g = torch.stack([xy[..., 0] / (W - 1) * 2 - 1, xy[..., 1] / (H - 1) * 2 - 1], -1).reshape(1, 1, -1, 2)
    out = F.grid_sample(img.permute(2, 0, 1)[None], g, align_corners=True, padding_mode="border")
    return out[0, :, 0].T.reshape(*xy.shape[:-1], 3)


def static_scene(T, prims, cam_origin=None, cam_rotation=None, focal=40.0):
    eye = torch.eye(3, dtype=F64).expand(T, 3, 3).clone()
    return Scene3D(prims, eye if cam_rotation is None else cam_rotation,
                   torch.zeros(T, 3, dtype=F64) if cam_origin is None else cam_origin, focal)


def prim(kind, size, center, T, seed=0, rotation=None):
    tex = random_texture(torch.Generator().manual_seed(seed), None, 0.0)
    c = torch.as_tensor(center, dtype=F64)
    c = c.expand(T, 3).clone() if c.ndim == 1 else c
    R = torch.eye(3, dtype=F64).expand(T, 3, 3).clone() if rotation is None else rotation
    return Primitive(kind, size, R, c, tex, (1.0,) * (6 if kind == "box" else 1))


def wall(T, depth=10.0, seed=0):
    return prim("plane", (0.0, 0.0, 0.0), (0.0, 0.0, depth), T, seed)


def test_same_seed_same_clip_and_frame_zero():
    a = render_scene(random_scene(3, CFG), 48, 48)
    b = render_scene(random_scene(3, CFG), 48, 48)
    c = render_scene(random_scene(4, CFG), 48, 48)
    assert torch.equal(a.video, b.video) and torch.equal(a.tracks.xy, b.tracks.xy)
    assert not torch.equal(a.video, c.video)
    assert a.video.shape == (6, 48, 48, 3) and 0 <= a.video.min() and a.video.max() <= 1
    assert torch.equal(a.tracks.xy[0], pixel_grid(48, 48)) and a.tracks.visible[0].all()
    assert a.tracks.depth.shape == (6, 48, 48) and a.tracks.depth.min() > 0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tracks_are_exact_surface_points(seed):
    """Casting the frame-t ray through xy[t] of a visible track finds the same surface point: same colour as
    frame 0 (to float precision); an in-frame invisible track's ray hits something nearer."""
    clip = render_scene(random_scene(seed, CFG), 48, 48)
    tr, scene = clip.tracks, clip.scene
    c0 = clip.video[0].reshape(-1, 3)
    moved = 0.0
    for t in range(1, 6):
        xy, vis, z = tr.xy[t].reshape(-1, 2).double(), tr.visible[t].reshape(-1), tr.depth[t].reshape(-1).double()
        owner, depth, local, face = cast(scene, t, xy, 48, 48)
        col = shade_points(scene, owner, local, face).clamp(0, 1)
        assert (col[vis] - c0[vis]).abs().max() < 1e-4
        assert torch.allclose(depth[vis], z[vis], rtol=1e-4)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= 47) & (xy[:, 1] >= 0) & (xy[:, 1] <= 47) & (z > 0.01)
        hidden = inside & ~vis
        assert bool((depth[hidden] < z[hidden] * (1 - 1e-6)).all())
        moved = max(moved, float(tr.displacement()[t].norm(dim=-1).max()))
    assert moved > 2.0  # the scene does move


@pytest.mark.parametrize("seed", [0, 1])
def test_warping_frame_t_by_the_tracks_reproduces_frame_0(seed):
    """Bilinear samples of frame t at xy[t] match frame 0 at visible pixels whose footprint is one surface."""
    clip = render_scene(random_scene(seed, Scene3DConfig(frames=6, height=64, width=64, texture_scale=4.0)), 64, 64)
    tr, own0 = clip.tracks, clip.owner[0]

    def errors(shift):
        errs = []
        for t in range(1, 6):
            xy = tr.xy[t] + torch.tensor(shift)
            x0 = xy[..., 0].floor().long().clamp(0, 62)
            y0 = xy[..., 1].floor().long().clamp(0, 62)
            o = clip.owner[t]
            same = (o[y0, x0] == own0) & (o[y0, x0 + 1] == own0) & (o[y0 + 1, x0] == own0) & (o[y0 + 1, x0 + 1] == own0)
            m = tr.visible[t] & same
            errs.append((bilinear(clip.video[t], xy) - clip.video[0]).abs().amax(-1)[m])
        return torch.cat(errs)

    err = errors((0.0, 0.0))
    assert err.numel() > 5000 and err.mean() < 0.03
    assert errors((1.5, 0.0)).mean() > 2 * err.mean()  # tracks off by 1.5 px are clearly worse


def test_occluding_object_hides_exactly_the_wall_behind_it():
    T = 6
    centers = torch.stack([torch.tensor([-1.5 + 0.6 * t, 0.0, 5.0], dtype=F64) for t in range(T)])
    box = prim("box", (0.5, 0.5, 0.5), centers, T, seed=1)
    clip = render_scene(static_scene(T, [wall(T), box]), 48, 48)
    tr, own = clip.tracks, clip.owner
    on_wall = own[0] == 0
    # Static camera and wall: wall points stay put, and are visible exactly where the box is not.
    assert torch.allclose(tr.xy[:, on_wall], pixel_grid(48, 48)[on_wall].expand(T, -1, 2), atol=1e-4)
    for t in range(T):
        assert torch.equal(tr.visible[t][on_wall], (own[t] == 0)[on_wall])
    front = (own[0] == 1) & ((tr.depth[0] - 4.5).abs() < 1e-4)  # the face towards the camera
    side = (own[0] == 1) & ~front  # its +x side, seen at frame 0 (left of centre), turned away at the end
    assert (~tr.visible[T - 1][on_wall]).sum() > 30 and tr.visible[:, front].all()
    assert side.sum() > 5 and not tr.visible[T - 1][side].any()
    # The front face (fronto-parallel at depth 4.5) moves 0.6 * 40 / 4.5 px per frame.
    d = tr.displacement()[T - 1][front]
    assert torch.allclose(d, torch.tensor([5 * 0.6 * 40 / 4.5, 0.0]), atol=1e-3)


def test_camera_translation_gives_parallax_rotation_does_not():
    T = 4
    box = prim("box", (0.4, 0.4, 0.4), (0.0, 0.0, 4.0), T, seed=2)
    origin = torch.stack([torch.tensor([0.3 * t, 0.0, 0.0], dtype=F64) for t in range(T)])
    clip = render_scene(static_scene(T, [wall(T), box], cam_origin=origin), 48, 48)
    d = clip.tracks.displacement()[T - 1]
    wall_d = d[clip.owner[0] == 0]
    assert torch.allclose(wall_d, torch.tensor([-0.9 * 40 / 10, 0.0]), atol=1e-4)  # -f tx / depth
    box_d = d[clip.owner[0] == 1][:, 0]
    assert box_d.max() < -0.9 * 40 / 4.4 + 1e-3  # nearer moves more: parallax
    # Pure yaw: the image moves by the rotation homography, whatever the depth.
    rot = rotation_matrix((0, 1, 0), torch.tensor([0.0, 0.02, 0.04, 0.06], dtype=F64))
    clip = render_scene(static_scene(T, [wall(T), box], cam_rotation=rot), 48, 48)
    K = torch.tensor([[40.0, 0, 23.5], [0, 40.0, 23.5], [0, 0, 1]], dtype=F64)
    p = torch.cat([pixel_grid(48, 48, dtype=F64), torch.ones(48, 48, 1, dtype=F64)], -1).reshape(-1, 3)
    q = p @ (K @ rot[T - 1].T @ torch.linalg.inv(K)).T
    want = (q[:, :2] / q[:, 2:]).float().reshape(48, 48, 2)
    vis = clip.tracks.visible[T - 1]
    assert vis.float().mean() > 0.7 and torch.allclose(clip.tracks.xy[T - 1][vis], want[vis], atol=1e-3)


def test_rotating_box_hides_its_far_side():
    T = 5
    rot = rotation_matrix((0, 1, 0), torch.linspace(0, math.pi / 2, T, dtype=F64))
    box = prim("box", (0.8, 0.8, 0.8), (0.0, 0.0, 5.0), T, seed=3, rotation=rot)
    clip = render_scene(static_scene(T, [wall(T), box]), 48, 48)
    front = clip.owner[0] == 1
    # After a quarter turn the face that was facing the camera looks sideways: edge-on, it is hidden.
    assert front.sum() > 100 and clip.tracks.visible[T - 1][front].float().mean() < 0.05


def test_dataset_items_and_bad_input():
    ds = Scenes3DDataset(Scene3DConfig(frames=4, height=32, width=32), 3, seed=1)
    video, packed = ds[1]
    assert len(ds) == 3 and video.shape == (4, 32, 32, 3) and packed.shape == (4, 32, 32, 4)
    assert torch.equal(unpack_tracks(packed).xy, ds.clip(1).tracks.xy)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(TypeError, match="cfg: expected Scene3DConfig"):
        Scenes3DDataset(CFG.__dict__, 3)
    with pytest.raises(ValueError, match="length: expected >= 1"):
        Scenes3DDataset(CFG, 0)
    with pytest.raises(ValueError, match="num_objects"):
        Scene3DConfig(num_objects=(3, 1))
    with pytest.raises(ValueError, match="fov_deg"):
        Scene3DConfig(fov_deg=(0.0, 10.0))
    with pytest.raises(TypeError, match="scene: expected Scene3D"):
        render_scene("scene", 32, 32)
    with pytest.raises(FileNotFoundError, match="texture_dir"):
        render_scene(random_scene(0, Scene3DConfig(frames=2, height=8, width=8, texture_dir="/nonexistent/x",
                                                   real_texture_prob=1.0)), 8, 8)


def test_still_camera_scenes():
    from moaw_core.data.synth import still_camera

    seed = next(s for s in range(100) if still_camera(s, 0.3))
    cfg = Scene3DConfig(frames=4, height=32, width=32)
    moving = random_scene(seed, cfg)
    still = random_scene(seed, Scene3DConfig(frames=4, height=32, width=32, still_camera=0.3))
    assert torch.equal(still.cam_origin, torch.zeros_like(still.cam_origin))
    assert torch.allclose(still.cam_rotation, torch.eye(3, dtype=still.cam_rotation.dtype).expand_as(still.cam_rotation))
    assert not torch.equal(moving.cam_origin, still.cam_origin)
    assert len(still.primitives) == len(moving.primitives)  # same scene, the objects keep their motion
    with pytest.raises(ValueError, match="still_camera"):
        Scene3DConfig(still_camera=-0.1)
