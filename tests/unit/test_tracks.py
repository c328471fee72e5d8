"""Tests for moaw_core.tracking.tracks: container validation, image encoding round trip, conversions."""
import math

import pytest
import torch

from moaw_core.tracking.tracks import (DenseTracks, TrackImages, decode_track_images, dense_to_flow, dense_to_sparse,
                              encode_track_images, flows_to_tracks, from_channels, grid_points,
                              identity_tracks, pack_tracks, roundtrip_error, sparse_from_grid, to_channels,
                              unpack_tracks)


def random_tracks(T=4, H=24, W=32, scale=8.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = identity_tracks(T, H, W)
    xy = base.xy.clone()
    xy[1:] += torch.randn(T - 1, H, W, 2, generator=g) * scale
    vis = torch.rand(T, H, W, generator=g) > 0.3
    vis[0] = True
    return DenseTracks(xy, vis, 1.0 + 5.0 * torch.rand(T, H, W, generator=g))


def translation_tracks(T, H, W, v):
    tr = identity_tracks(T, H, W)
    xy = tr.xy + torch.arange(T, dtype=torch.float32)[:, None, None, None] * torch.tensor(v)
    x, y = xy[..., 0], xy[..., 1]
    return DenseTracks(xy, (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1))


def test_dense_tracks_properties_and_identity():
    tr = identity_tracks(3, 5, 7)
    assert (tr.num_frames, tr.height, tr.width) == (3, 5, 7)
    assert torch.equal(tr.xy[0, 2, 4], torch.tensor([4.0, 2.0]))
    assert tr.displacement().abs().max() == 0 and tr.visible.all() and tr.depth is None
    assert tr.to("cpu").xy.device.type == "cpu"


def test_dense_tracks_rejects_bad_inputs():
    xy = torch.zeros(2, 3, 4, 2)
    with pytest.raises(ValueError, match="DenseTracks.xy: expected a 4-D tensor with last dim 2"):
        DenseTracks(torch.zeros(2, 3, 4, 3), torch.ones(2, 3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="DenseTracks.visible: expected dtype torch.bool"):
        DenseTracks(xy, torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"DenseTracks.visible: expected shape \(2, 3, 4\)"):
        DenseTracks(xy, torch.ones(2, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="DenseTracks.depth: expected shape"):
        DenseTracks(xy, torch.ones(2, 3, 4, dtype=torch.bool), torch.ones(1, 3, 4))
    with pytest.raises(TypeError, match="DenseTracks.xy: expected a torch.Tensor"):
        DenseTracks([[0.0]], torch.ones(2, 3, 4, dtype=torch.bool))


def test_encoding_colour_convention():
    tr = identity_tracks(3, 1, 1)
    xy = tr.xy.clone()
    xy[1, 0, 0] += torch.tensor([10.0, 0.0])  # right -> red
    xy[2, 0, 0] += torch.tensor([0.0, 5.0])   # down, half saturation -> hue 1/4
    im = encode_track_images(DenseTracks(xy, tr.visible), max_disp=10.0)
    assert torch.allclose(im.flow[0, 0, 0], torch.ones(3))  # no motion = white
    assert torch.allclose(im.flow[1, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(im.flow[2, 0, 0], torch.tensor([0.75, 1.0, 0.5]))
    assert im.flow.min() >= 0 and im.flow.max() <= 1 and im.visibility.shape == (3, 1, 1, 3)


def test_roundtrip_float_is_exact():
    tr = random_tracks()
    out = decode_track_images(encode_track_images(tr, max_disp=64.0))
    assert (out.xy - tr.xy).abs().max() < 1e-3
    assert torch.equal(out.visible, tr.visible)
    assert (out.depth - tr.depth).abs().max() < 1e-4


def test_roundtrip_8bit_within_bound():
    tr = random_tracks(scale=10.0)
    max_disp = 48.0
    res = roundtrip_error(tr, max_disp, quantize_bits=8)
    # Analysis: saturation error <= 1/510 and hue error ~ 2pi/6 * 2/510 / S give <= ~0.0045 * max_disp.
    assert res["clipped_frac"] == 0.0
    assert res["max_px"] < 0.006 * max_disp and res["mean_px"] < 0.002 * max_disp
    assert res["visibility_acc"] == 1.0
    assert res["depth_abs_err"] < 5.0 / 255  # depth range is about 5
    assert roundtrip_error(tr, max_disp, quantize_bits=None)["max_px"] < 1e-3


def test_clipping_keeps_direction():
    tr = identity_tracks(2, 1, 1)
    xy = tr.xy.clone()
    xy[1, 0, 0] += torch.tensor([30.0, 40.0])  # |d| = 50 > max_disp
    out = decode_track_images(encode_track_images(DenseTracks(xy, tr.visible), max_disp=10.0))
    assert torch.allclose(out.displacement()[1, 0, 0], torch.tensor([6.0, 8.0]), atol=1e-4)
    assert roundtrip_error(DenseTracks(xy, tr.visible), 10.0)["clipped_frac"] == 0.5


def test_codec_is_applied():
    tr = random_tracks()
    same = roundtrip_error(tr, 48.0, codec=(lambda x: x.clone(), lambda z: z))
    assert same == roundtrip_error(tr, 48.0)
    noisy = roundtrip_error(tr, 48.0, codec=(lambda x: x, lambda z: (z + 0.05).clamp(0, 1)))
    assert noisy["mean_px"] > 5 * same["mean_px"]


def test_channels_round_trip():
    tr = random_tracks()
    im = encode_track_images(tr, 64.0)
    ch = to_channels(im)
    assert ch.shape == (4, 24, 32, 5)
    out = decode_track_images(from_channels(ch, 64.0, im.depth_range))
    assert (out.xy - tr.xy).abs().max() < 1e-3 and (out.depth - tr.depth).abs().max() < 1e-4
    assert from_channels(ch, 64.0).depth is None
    with pytest.raises(ValueError, match="channels: expected a 4-D tensor with last dim 5"):
        from_channels(ch[..., :4], 64.0)


def test_encode_decode_reject_bad_inputs():
    tr = random_tracks()
    with pytest.raises(ValueError, match="max_disp: expected a positive number"):
        encode_track_images(tr, 0.0)
    with pytest.raises(TypeError, match="tracks: expected DenseTracks"):
        encode_track_images(tr.xy, 8.0)
    with pytest.raises(ValueError, match="depth_range: expected"):
        encode_track_images(tr, 8.0, depth_range=(5.0, 1.0))
    im = encode_track_images(tr, 8.0)
    bad = TrackImages(im.flow[..., :2], im.visibility, 8.0)
    with pytest.raises(ValueError, match="images.flow: expected a 4-D tensor with last dim 3"):
        decode_track_images(bad)
    with pytest.raises(ValueError, match="images.depth_range: required"):
        decode_track_images(TrackImages(im.flow, im.visibility, 8.0, im.depth, None))


def test_pack_unpack():
    tr = random_tracks()
    out = unpack_tracks(pack_tracks(tr))
    assert torch.equal(out.xy, tr.xy) and torch.equal(out.visible, tr.visible) and torch.equal(out.depth, tr.depth)


def test_grid_points_and_sparse_sampling():
    pts = grid_points(8, 16, 4)
    assert pts.shape == (16, 2)
    assert torch.allclose(pts[0], torch.tensor([1.5, 0.5])) and torch.allclose(pts[-1], torch.tensor([13.5, 6.5]))
    tr = identity_tracks(3, 8, 16)
    xy = tr.xy.clone()
    xy[1] = xy[1] * 2.0  # linear field -> bilinear sampling is exact
    xy[2] = xy[2] + torch.tensor([1.0, -3.0])
    vis = tr.visible.clone()
    vis[2, :, :8] = False
    p, v = dense_to_sparse(DenseTracks(xy, vis), torch.tensor([[1.5, 2.5], [12.25, 3.0]]))
    assert p.shape == (2, 3, 2) and v.shape == (2, 3)
    assert torch.allclose(p[0], torch.tensor([[1.5, 2.5], [3.0, 5.0], [2.5, -0.5]]))
    assert v.tolist() == [[True, True, False], [True, True, True]]
    sp, sv = sparse_from_grid(DenseTracks(xy, vis), 4)
    assert torch.allclose(sp[:, 0], pts) and sv.shape == (16, 3)
    with pytest.raises(ValueError, match=r"points_xy: expected points inside \[0, 15\] x \[0, 7\]"):
        dense_to_sparse(tr, torch.tensor([[16.5, 0.0]]))
    with pytest.raises(ValueError, match="points_xy: expected a 2-D tensor"):
        dense_to_sparse(tr, torch.zeros(3))


def test_dense_to_flow_translation():
    tr = translation_tracks(3, 10, 12, (1.5, -0.5))
    flow, valid = dense_to_flow(tr, 1, return_valid=True)
    assert torch.allclose(flow[valid], torch.tensor([1.5, -0.5]).expand(int(valid.sum()), 2), atol=1e-5)
    # Frame-1 pixels that no frame-0 pixel maps to (entered from the left/bottom) are invalid.
    assert not valid[:, 0].any() and valid[1:-1, 2:-1].all()
    with pytest.raises(ValueError, match=r"t: expected an int in \[0, 1\]"):
        dense_to_flow(tr, 2)


def test_flows_to_tracks_constant_flow():
    flows = torch.zeros(3, 6, 9, 2)
    flows[..., 0] = 2.0
    tr = flows_to_tracks(flows)
    expected = translation_tracks(4, 6, 9, (2.0, 0.0))
    assert torch.allclose(tr.xy, expected.xy) and torch.equal(tr.visible, expected.visible)
    # A consistent backward flow keeps the in-frame points; an inconsistent one loses them all.
    assert torch.equal(flows_to_tracks(flows, backward_flows=-flows).visible, expected.visible)
    assert not flows_to_tracks(flows, backward_flows=flows).visible[1:].any()
    with pytest.raises(ValueError, match="backward_flows: expected shape"):
        flows_to_tracks(flows, backward_flows=flows[:2])
    with pytest.raises(ValueError, match="flows: expected a 4-D tensor with last dim 2"):
        flows_to_tracks(flows[0])


def test_flow_chain_recovers_translation_tracks():
    tr = translation_tracks(5, 16, 20, (1.25, 0.75))
    flows = torch.stack([dense_to_flow(tr, t) for t in range(4)])
    out = flows_to_tracks(flows)
    vis = out.visible & tr.visible
    assert vis.float().mean() > 0.6
    assert (out.xy - tr.xy)[vis].abs().max() < 1e-4
    assert torch.equal(out.visible, tr.visible)
    assert math.isclose(float(out.xy[4, 0, 0, 0]), 5.0, abs_tol=1e-4)
