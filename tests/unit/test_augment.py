"""Photometric augmentation: seeded, in range, the same draw for every frame, tracks untouched; bad inputs."""
import dataclasses

import pytest
import torch

from moaw_core.data.augment import PhotometricConfig, photometric
from moaw_core.data.synth import SynthConfig, SynthDataset


def _clip():
    v, _ = SynthDataset(SynthConfig(frames=3, height=16, width=16), 2, 0)[0]
    return v


def test_seeded_in_range_and_per_clip():
    v = _clip()
    cfg = PhotometricConfig(prob=1.0, noise=0.0)
    a = photometric(v, torch.Generator().manual_seed(3), cfg)
    b = photometric(v, torch.Generator().manual_seed(3), cfg)
    c = photometric(v, torch.Generator().manual_seed(4), cfg)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == v.shape
    # one draw per clip: identical frames stay identical
    still = v[:1].expand(3, -1, -1, -1).contiguous()
    s = photometric(still, torch.Generator().manual_seed(5), cfg)
    assert torch.equal(s[0], s[1]) and torch.equal(s[1], s[2])


def test_darkens_and_flattens_sometimes_and_prob_zero_is_identity():
    v = _clip()
    outs = [photometric(v, torch.Generator().manual_seed(k), PhotometricConfig(prob=1.0)) for k in range(40)]
    means = torch.stack([o.mean() for o in outs])
    assert float(means.min()) < 0.6 * float(v.mean())  # dark clips like real footage occur
    assert torch.equal(photometric(v, torch.Generator().manual_seed(0), PhotometricConfig(prob=0.0)), v)


@pytest.mark.parametrize("field,value", [("gain", (0.0, 1.0)), ("gamma", (2.0, 1.0)), ("prob", 1.5), ("color", 1.0),
                                         ("noise", -0.1)])
def test_bad_config(field, value):
    with pytest.raises(ValueError, match="PhotometricConfig"):
        dataclasses.replace(PhotometricConfig(), **{field: value})


def test_bad_video():
    with pytest.raises(ValueError, match="video"):
        photometric(torch.zeros(3, 16, 16), torch.Generator())


def test_residual_clip_has_exact_tracks_of_its_warped_frames():
    """The warped frames sampled at the residual tracks give frame 0 back (where the point's footprint is one
    surface), tracks 1.5 px off do not, and the residual is not the identity (the error was put in)."""
    import torch.nn.functional as F

    from moaw_core.data.augment import ResidualConfig, residual_clip
    from moaw_core.data.scenes3d import Scene3DConfig, random_scene, render_scene

    clip = render_scene(random_scene(2, Scene3DConfig(frames=6, height=64, width=64, texture_scale=4.0)), 64, 64)
    cfg = ResidualConfig(prob=1.0, max_error=4.0, grid=(2, 4))
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    # the draw whose error is large enough to see (seed search kept short and deterministic)
    seed = next(s for s in range(20) if residual_clip(clip.video, clip.tracks, g(s), cfg)[1]
                .displacement()[-1].norm(dim=-1).median() > 1.0)
    warped, res = residual_clip(clip.video, clip.tracks, g(seed), cfg)
    again = residual_clip(clip.video, clip.tracks, g(seed), cfg)
    assert torch.equal(again[0], warped) and torch.equal(again[1].xy, res.xy)
    assert torch.equal(warped[0], clip.video[0]) and not torch.allclose(warped[1:], clip.video[1:], atol=0.05)
    assert res.depth is clip.tracks.depth and bool(res.visible[0].all())

    def bilinear(img, xy):
        H, W = img.shape[:2]
        gr = torch.stack([xy[..., 0] / (W - 1) * 2 - 1, xy[..., 1] / (H - 1) * 2 - 1], -1)[None]
        return F.grid_sample(img.permute(2, 0, 1)[None], gr, align_corners=True, padding_mode="border")[0].permute(1, 2, 0)

    def errors(shift):
        errs = []
        for t in range(1, 6):
            gt = clip.tracks.xy[t]
            x0, y0 = gt[..., 0].floor().long().clamp(0, 62), gt[..., 1].floor().long().clamp(0, 62)
            o, o0 = clip.owner[t], clip.owner[0]
            same = (o[y0, x0] == o0) & (o[y0, x0 + 1] == o0) & (o[y0 + 1, x0] == o0) & (o[y0 + 1, x0 + 1] == o0)
            m = res.visible[t] & same
            errs.append((bilinear(warped[t], res.xy[t] + torch.tensor(shift)) - clip.video[0]).abs().amax(-1)[m])
        return torch.cat(errs)

    err = errors((0.0, 0.0))
    assert err.numel() > 5000 and err.mean() < 0.05
    assert errors((1.5, 0.0)).mean() > 2 * err.mean()
    # prob 0: the clip and its tracks unchanged; bad input
    same_v, same_t = residual_clip(clip.video, clip.tracks, g(0), ResidualConfig(prob=0.0))
    assert torch.equal(same_v, clip.video) and same_t is clip.tracks
    with pytest.raises(ValueError, match="tracks"):
        residual_clip(clip.video[:3], clip.tracks, g(0), cfg)
    with pytest.raises(ValueError, match="video"):
        residual_clip(clip.video[0], clip.tracks, g(0), cfg)
    with pytest.raises(ValueError, match="ResidualConfig"):
        ResidualConfig(max_error=-1.0)
