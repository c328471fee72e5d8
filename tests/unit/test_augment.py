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
