"""Tests for moaw_core.tracking.long_tracks: window anchors, chaining windows of exact tracks reproduces the
clip's tracks, resizing tracks, and track_long around a window predictor."""
import pytest
import torch

from moaw_core.data.scenes3d import Scene3D, Scene3DConfig, random_scene, render_scene
from moaw_core.tracking.long_tracks import (chain_windows, refine_frames, refine_levels, refine_tracks, resize_tracks,
                                            smooth_tracks, tile_starts, track_long, window_starts, work_size)
from moaw_core.tracking.tracks import DenseTracks, identity_tracks, pixel_grid


def sub_scene(scene: Scene3D, a: int, n: int) -> Scene3D:
    """The same scene seen from frame a for n frames (tracks anchored at frame a)."""
    prims = [type(p)(p.kind, p.size, p.rotation[a:a + n], p.center[a:a + n], p.texture, p.shade)
             for p in scene.primitives]
    return Scene3D(prims, scene.cam_rotation[a:a + n], scene.cam_origin[a:a + n], scene.focal, scene.texture_scale)


def gt_windows(scene, T, window, stride, H, W):
    return [(a, render_scene(sub_scene(scene, a, min(window, T - a)), H, W).tracks)
            for a in window_starts(T, window, stride)]


def test_window_starts():
    assert window_starts(8, 8, 7) == [0] and window_starts(5, 8, 7) == [0]
    assert window_starts(16, 8, 7) == [0, 7, 8]
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(15, 8, 7) == [0, 7]
    with pytest.raises(ValueError, match="window/stride"):
        window_starts(16, 8, 8)
    with pytest.raises(ValueError, match="num_frames"):
        window_starts(0, 8, 7)


def test_chaining_exact_windows_reproduces_the_clip_tracks():
    T, H, W = 16, 48, 48
    scene = random_scene(5, Scene3DConfig(frames=T, height=H, width=W))
    gt = render_scene(scene, H, W).tracks
    out = chain_windows(gt_windows(scene, T, 8, 7, H, W), T)
    assert torch.allclose(out.xy[:8], gt.xy[:8], atol=1e-4) and torch.equal(out.visible[:8], gt.visible[:8])
    both = gt.visible & out.visible
    err = (out.xy - gt.xy).norm(dim=-1)[both]
    assert float(err.median()) < 0.05 and float((err < 0.5).float().mean()) > 0.95
    assert float((out.visible == gt.visible).float().mean()) > 0.95
    assert float(gt.displacement()[-1].norm(dim=-1).median()) > 2  # the clip does move
    # Chaining is not a no-op: an unchained (anchor-ignoring) composition is clearly worse at the end.
    naive = torch.cat([gt.xy[:8], pixel_grid(H, W)[None] + gt_windows(scene, T, 8, 7, H, W)[-1][1].displacement()[1:]])
    assert (naive[-1] - gt.xy[-1]).norm(dim=-1)[gt.visible[-1]].mean() > 5 * err.mean()


def test_chaining_is_exact_for_an_affine_field_and_carries_hidden_anchors():
    T, H, W = 10, 16, 16
    def affine(a, n):  # tracks of frame-a pixels: zoom 1.05 per frame about (6, 9) (the same from any anchor)
        g = pixel_grid(H, W)
        k = torch.arange(n, dtype=torch.float32)[:, None, None, None]
        c = torch.tensor([6.0, 9.0])
        xy = c + (g - c) * 1.05 ** k
        return DenseTracks(xy, torch.ones(n, H, W, dtype=torch.bool))
    wins = [(a, affine(a, min(4, T - a))) for a in window_starts(T, 4, 2)]
    out = chain_windows(wins, T)
    want = affine(0, T).xy
    inside = (want >= 0).all(-1) & (want[..., 0] <= W - 1) & (want[..., 1] <= H - 1)
    prev_inside = torch.cat([inside[:1], inside[:-1]]) & inside
    assert torch.allclose(out.xy[prev_inside], want[prev_inside], atol=1e-3)
    # A point hidden at anchor 2 (window 1 says so) keeps window 0's estimate for frame 3, invisible after.
    vis = wins[0][1].visible.clone()
    vis[2, 5, 5] = False
    wins[0] = (0, DenseTracks(wins[0][1].xy, vis))
    out2 = chain_windows(wins, T)
    assert not out2.visible[2, 5, 5] and out2.visible[3, 5, 5] and not out2.visible[4, 5, 5]
    assert torch.allclose(out2.xy[3, 5, 5], wins[0][1].xy[3, 5, 5]) and torch.allclose(out2.xy[3], out.xy[3], atol=1e-3)


def test_resize_tracks_scales_displacements():
    g = pixel_grid(8, 8)
    xy = torch.stack([g, g + torch.tensor([1.0, -0.5])])
    up = resize_tracks(DenseTracks(xy, torch.ones(2, 8, 8, dtype=torch.bool), torch.ones(2, 8, 8)), 16, 32)
    assert up.xy.shape == (2, 16, 32, 2) and torch.equal(up.xy[0], pixel_grid(16, 32))
    assert torch.allclose(up.displacement()[1], torch.tensor([4.0, -1.0]).expand(16, 32, 2))
    assert up.visible.all() and up.depth.shape == (2, 16, 32)
    assert work_size(128, 192, 64) == (64, 96) and work_size(436, 1024, 64) == (64, 152)
    assert work_size(60, 60, None) == (64, 64)


def test_track_long_with_an_exact_predictor_and_bad_input():
    T, H, W = 12, 32, 32
    scene = random_scene(2, Scene3DConfig(frames=T, height=H, width=W))
    clip = render_scene(scene, H, W)
    calls = []

    def predict(vs):  # the exact tracker of each window (found by its first frame)
        calls.append([])
        out = []
        for v in vs:
            a = next(a for a in range(T) if torch.equal(v[0], clip.video[a]))
            calls[-1].append((a, len(v)))
            out.append(render_scene(sub_scene(scene, a, len(v)), H, W).tracks)
        return out

    out = track_long(predict, clip.video, window=6, stride=3, work_height=None, batch=2)
    assert calls == [[(0, 6), (3, 6)], [(6, 6)]]  # two calls of at most 2 windows
    both = out.visible & clip.tracks.visible
    assert float((out.xy - clip.tracks.xy).norm(dim=-1)[both].median()) < 0.05
    calls.clear()
    one = track_long(predict, clip.video, window=6, stride=3, work_height=None)  # default batch: one call
    assert calls == [[(0, 6), (3, 6), (6, 6)]] and torch.equal(one.xy, out.xy)
    calls.clear()  # short last window: anchors 0, 5, 10; the last covers the 2 missing frames, in its own call
    short = track_long(predict, clip.video, window=6, work_height=None, short_last=True)
    assert calls == [[(0, 6), (5, 6)], [(10, 2)]]
    both = short.visible & clip.tracks.visible
    assert float((short.xy - clip.tracks.xy).norm(dim=-1)[both].median()) < 0.05
    with pytest.raises(ValueError, match="batch"):
        track_long(predict, clip.video, window=6, stride=3, batch=0)
    with pytest.raises(ValueError, match="predict_windows"):
        track_long(lambda vs: [], clip.video, window=6, stride=3, work_height=None)
    with pytest.raises(ValueError, match="video: expected"):
        track_long(predict, clip.video[0])
    with pytest.raises(ValueError, match="window/stride"):
        track_long(predict, clip.video, window=6, stride=6)
    with pytest.raises(ValueError, match="first window anchored at frame 0"):
        chain_windows([(3, clip.tracks)], T)
    with pytest.raises(ValueError, match="not covered"):
        chain_windows([(0, DenseTracks(clip.tracks.xy[:4], clip.tracks.visible[:4]))], T)


def test_track_long_splits_windows_that_saturate_the_displacement_range():
    """A predictor that clips displacements at max_disp (as the track encoding does) loses fast motion over a
    whole window; split into shorter (padded) windows, the clip's tracks come back."""
    T, H, W, limit = 12, 32, 32, 2.0
    scene = random_scene(2, Scene3DConfig(frames=T, height=H, width=W, motion_scale=3.0))
    clip = render_scene(scene, H, W)
    lengths = []

    def clipped(vs):
        out = []
        for v in vs:
            a = next(a for a in range(T) if torch.equal(v[0], clip.video[a]))
            k = next((k for k in range(1, len(v)) if torch.equal(v[k], v[-1])), len(v) - 1) + 1  # real frames
            lengths.append(k)
            tr = render_scene(sub_scene(scene, a, len(v)) if a + len(v) <= T else sub_scene(scene, a, k), H, W).tracks
            d = tr.displacement()
            d = d * (limit / d.norm(dim=-1, keepdim=True).clamp_min(limit))
            xy = pixel_grid(H, W)[None] + d
            out.append(DenseTracks(torch.cat([xy, xy[-1:].expand(len(v) - len(xy), -1, -1, -1)]),
                                   torch.cat([tr.visible, tr.visible[-1:].expand(len(v) - len(xy), -1, -1)])))
        return out

    def err(tracks):
        both = tracks.visible & clip.tracks.visible
        return float((tracks.xy[-1] - clip.tracks.xy[-1]).norm(dim=-1)[both[-1]].median())  # at the last frame

    fixed = track_long(clipped, clip.video, window=6, work_height=None)
    assert lengths == [6, 6, 6] and err(fixed) > 2.0  # clipped at 3 px per window: the end is far off
    lengths.clear()
    split = track_long(clipped, clip.video, window=6, work_height=None, max_disp=limit)
    assert min(lengths) < 6 and err(split) < 0.3
    with pytest.raises(ValueError, match="max_disp"):
        track_long(clipped, clip.video, window=6, max_disp=0.0)


def test_refinement_schedule_helpers():
    assert refine_levels(128, 64) == [128] and refine_levels(436, 64) == [128, 256, 436]
    assert refine_levels(64, 64) == [] and refine_levels(48, 64) == [] and refine_levels(300, None) == []
    assert refine_levels(436, 64, max_height=200) == [128, 200]
    assert refine_frames(16, 8) == [2, 4, 6, 9, 11, 13, 15]  # one window: 7 frames about every 2, ending at T-1
    assert refine_frames(5, 8) == [1, 2, 3, 4] and refine_frames(2, 8) == [1]
    long = refine_frames(48, 8)
    assert len(long) == 21 and long[-1] == 47 and len(set(long)) == 21
    assert tile_starts(128, 64) == [0, 64] and tile_starts(100, 64, 16) == [0, 36] and tile_starts(32, 64) == [0]
    with pytest.raises(ValueError, match="window/spacing"):
        refine_frames(1, 8)
    with pytest.raises(ValueError, match="window/spacing"):
        refine_frames(16, 8, spacing=0)


def _clip(seed=3, T=10, H=64, W=64):
    return render_scene(random_scene(seed, Scene3DConfig(frames=T, height=H, width=W)), H, W)


def _err(tracks, gt):
    both = tracks.visible[1:] & gt.visible[1:]
    return float((tracks.xy[1:] - gt.xy[1:]).norm(dim=-1)[both].mean())


def test_refine_tracks_keeps_exact_tracks_when_the_residual_is_zero():
    clip = _clip()
    T, H, W = clip.video.shape[:3]
    calls = []

    def still(vs):  # a predictor that sees no residual motion
        calls.append(tuple(vs.shape))
        return [identity_tracks(v.shape[0], v.shape[1], v.shape[2]) for v in vs]

    out = refine_tracks(still, clip.video, clip.tracks, tile=32, batch=3)
    assert torch.allclose(out.xy, clip.tracks.xy, atol=1e-4)
    assert torch.equal(out.visible, clip.tracks.visible) and out.depth is clip.tracks.depth
    # frames 1..9 in one 8-frame window? 9 frames > 7: refine_frames(10) = 7 frames, 4 tiles of 32 -> 4 clips
    assert sum(c[0] for c in calls) == 4 and all(c[1:] == (8, 32, 32, 3) for c in calls)


def test_refine_tracks_with_an_independent_window_tracker_removes_a_smooth_error():
    """Tracks off by a smooth drift (as chained windows are) come back: the residual on the warped clips is measured
    by OpenCV's DIS (an independent tracker), so what is tested is the warp / tile / time-interpolation /
    composition, not a model."""
    pytest.importorskip("cv2")
    from moaw_core.tracking.cv_trackers import track_dense_dis

    clip = _clip()
    gt = clip.tracks
    T = gt.num_frames
    drift = torch.tensor([1.6, -1.2]) * torch.linspace(0, 1, T)[:, None, None, None]
    off = DenseTracks(gt.xy + drift, gt.visible, gt.depth)
    dis = lambda vs: [track_dense_dis(v) for v in vs]  # noqa: E731
    before = _err(off, gt)
    out = refine_tracks(dis, clip.video, off, tile=32, overlap=8)
    assert before > 1.0 and _err(out, gt) < 0.5 * before
    # at half resolution (refinement coarser than the video): still a clear gain, tracks at the video's size
    half = refine_tracks(dis, clip.video, off, height=32, tile=32)
    assert half.xy.shape == gt.xy.shape and _err(half, gt) < 0.7 * before
    with pytest.raises(ValueError, match="tracks"):
        refine_tracks(dis, clip.video, DenseTracks(gt.xy[:3], gt.visible[:3]))
    with pytest.raises(ValueError, match="video"):
        refine_tracks(dis, clip.video[0], gt)
    with pytest.raises(ValueError, match="batch/tile/overlap"):
        refine_tracks(dis, clip.video, gt, tile=32, overlap=32)
    with pytest.raises(ValueError, match="predict_windows"):
        refine_tracks(lambda vs: [], clip.video, gt)


def test_refine_tracks_smooths_the_stitched_residual_across_tile_seams():
    """smooth > 1 filters each measured residual after the tiles are stitched: a residual that jumps between two
    tiles (a stand-in predictor answering each tile's mean brightness) becomes the box mean of the stitched step
    (a ramp across the seam), not two flat tiles; smooth 0 keeps the step."""
    import numpy as np

    T, H, W = 3, 32, 64
    video = torch.zeros(T, H, W, 3)
    video[:, :, 32:] = 1.0  # left tile dark, right tile bright, nothing moves

    def by_brightness(vs):
        out = []
        for v in vs:
            d = torch.zeros(v.shape[0], v.shape[1], v.shape[2], 2)
            d[1:, ..., 0] = 0.5 + 0.5 * float(v[0].mean())  # 0.5 px on the left tile, 1.0 px on the right
            out.append(DenseTracks(pixel_grid(v.shape[1], v.shape[2])[None] + d, torch.ones(v.shape[:3], dtype=torch.bool)))
        return out

    still = identity_tracks(T, H, W)
    step = refine_tracks(by_brightness, video, still, tile=32).displacement()[1, :, 8:56, 0]
    assert torch.allclose(step[:, :24], torch.full((H, 24), 0.5)) and torch.allclose(step[:, 24:], torch.ones(H, 24))
    ramp = refine_tracks(by_brightness, video, still, tile=32, smooth=5).displacement()[1, 0, :, 0]
    ref = np.pad(np.r_[np.full(32, 0.5), np.ones(32)], 2, mode="edge")
    ref = np.lib.stride_tricks.sliding_window_view(ref, 5).mean(-1)
    assert np.allclose(ramp[8:56].numpy(), ref[8:56], atol=1e-5) and 0.55 < float(ramp[31]) < 0.95


def test_smooth_tracks():
    t = identity_tracks(3, 12, 16)
    t.xy[1:] += torch.tensor([1.5, -0.5])  # a uniform motion stays as it is
    s = smooth_tracks(t, 5)
    assert torch.allclose(s.xy, t.xy, atol=1e-5) and torch.equal(s.visible, t.visible)
    spike = identity_tracks(2, 12, 16)
    spike.xy[1, 6, 8, 0] += 9.0  # one pixel moves 9 px: spread evenly over its 3 x 3 box, nothing lost
    d = smooth_tracks(spike, 3).displacement()
    assert torch.allclose(d[1, 5:8, 7:10, 0], torch.ones(3, 3)) and float(d[1].abs().sum()) == pytest.approx(9.0)
    assert float(d[0].abs().max()) == 0.0  # frame 0 stays the identity
    assert smooth_tracks(spike, 1) is spike and smooth_tracks(spike, 0) is spike
    import numpy as np  # against an independent box mean (numpy edge padding, sliding windows), odd and even sizes
    rnd = identity_tracks(2, 13, 17)
    rnd.xy[1] += torch.randn(13, 17, 2, generator=torch.Generator().manual_seed(0)) * 3
    for size in (4, 5, 11):
        lo, hi = (size - 1) // 2, size // 2
        ref = np.pad(rnd.displacement()[1].numpy(), ((lo, hi), (lo, hi), (0, 0)), mode="edge")
        ref = np.lib.stride_tricks.sliding_window_view(ref, (size, size), axis=(0, 1)).mean(axis=(-2, -1))
        assert np.allclose(smooth_tracks(rnd, size).displacement()[1].numpy(), ref, atol=1e-5)
    tiny = identity_tracks(2, 3, 4)
    tiny.xy[1] += 2.0
    assert torch.allclose(smooth_tracks(tiny, 11).xy, tiny.xy, atol=1e-5)  # a box larger than the field
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            smooth_tracks(t, bad)
    with pytest.raises(TypeError, match="tracks"):
        smooth_tracks(t.xy, 3)
