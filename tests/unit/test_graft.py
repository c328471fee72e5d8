"""Grafting a tracker's update onto another generator of the same base (`moaw_core.tracking.graft`)."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from moaw_core.engine.i2v import widen_for_i2v
from moaw_core.tracking.graft import graft_tracker
from moaw_core.tracking.tracker import MoawTracker, build_wan


def _nudge(model: torch.nn.Module, scale: float, seed: int) -> torch.nn.Module:
    """A stand-in for training: every floating-point weight moved by seeded noise."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def trio():
    source = build_wan(num_layers=2, seed=0).eval()
    tracker = _nudge(MoawTracker.from_generator(source, 32, "track"), 0.02, 1).eval()
    target, _ = widen_for_i2v(_nudge(copy.deepcopy(source), 0.01, 2))  # an image-to-video fine-tune of the source
    return tracker, source, target.eval()


def test_graft_is_target_plus_the_trackers_update(trio):
    tracker, source, target = trio
    before = [copy.deepcopy(m.state_dict()) for m in (tracker, source, target)]
    grafted, stats = graft_tracker(tracker, source, target)
    for m, sd in zip((tracker, source, target), before):  # nothing passed in is modified
        assert all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())
    g, t, s, tg = (m.state_dict() for m in (grafted.backbone, tracker.backbone, source, target))
    for k, v in g.items():
        if k.startswith(("patch_embedding.", "proj_out.")):
            assert torch.equal(v, t[k]), k  # the tracker's own [track | video] input and track head
        else:
            assert torch.allclose(v, tg[k] + (t[k] - s[k]), atol=1e-6), k
    assert (grafted.track_channels, grafted.video_channels) == (32, 16)
    assert 0 < stats["target_gap"] < stats["update_norm"]
    # every block is the target's architecture: same keys and shapes (what feature injection needs)
    blocks = lambda sd: {k: v.shape for k, v in sd.items() if k.startswith("blocks.")}  # noqa: E731
    assert blocks(g) == blocks(tg)


def test_graft_onto_its_own_base_is_the_tracker(trio):
    tracker, source, _ = trio
    grafted, stats = graft_tracker(tracker, source, source)
    assert stats["target_gap"] == 0
    x = torch.randn(1, 32, 2, 8, 8)
    v = torch.randn(1, 16, 2, 8, 8)
    t = torch.tensor([500.0])
    with torch.no_grad():
        assert torch.allclose(grafted(x, v, t), tracker(x, v, t), atol=1e-5)


def test_graft_bad_inputs(trio):
    tracker, source, target = trio
    with pytest.raises(TypeError, match="tracker"):
        graft_tracker(source, source, target)
    with pytest.raises(TypeError, match="target"):
        graft_tracker(tracker, source, "model.safetensors")
    with pytest.raises(ValueError, match="source: not the tracker's architecture"):
        graft_tracker(tracker, build_wan(num_layers=3, seed=0), target)
    with pytest.raises(ValueError, match="target: not the tracker's architecture"):
        graft_tracker(tracker, source, build_wan(num_layers=2, dim=256, seed=0))


def test_train_graft_settings(tmp_path):
    from moaw_core.training.trainer import TrainConfig, check_config

    cfg = TrainConfig(task="track", init="gen.safetensors")
    with pytest.raises(ValueError, match="graft"):
        check_config(dataclasses.replace(cfg, graft="trk.safetensors"))
    with pytest.raises(ValueError, match="graft"):
        check_config(dataclasses.replace(cfg, task="generate", graft="a", graft_base="b"))
    with pytest.raises(FileNotFoundError, match="graft"):
        check_config(dataclasses.replace(cfg, graft=str(tmp_path / "nope.safetensors"),
                                         graft_base=str(tmp_path / "nope2.safetensors")))
