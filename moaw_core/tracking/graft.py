"""Grafting a trained tracker onto another generator of the same base (task arithmetic).

A Moaw tracker is a fine-tune of its generator. When a second generator is a fine-tune of that same generator
(the bundled image-to-video generator is the text-to-video one widened and trained on), the tracker's update
can be carried over instead of learning to track again from scratch:

    grafted = target + (tracker - source)      on every weight the three share (blocks, embedders, norms)

with the tracker's own input and output projections (its [track | video] patch embedding and track-latent
head: they are not the generators' weights, so they have no update to carry). Every block stays structurally
identical to the target's, which is what Moaw's feature injection needs. `python -m moaw_core train --task
track --init TARGET --graft TRACKER --graft-base SOURCE` starts training from the graft.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from moaw_core.engine.backbones import family_of
from moaw_core.tracking.tracker import MoawTracker


def _io_prefixes(model: nn.Module) -> tuple[str, str]:
    fam = family_of(model)
    return fam.in_proj + ".", fam.out_proj + "."


def graft_tracker(tracker: MoawTracker, source: nn.Module, target: nn.Module) -> tuple[MoawTracker, dict]:
    """A tracker for `target`: target + (tracker - source) on the shared weights, the tracker's own in/out projections.

    Args:
        tracker: the trained tracker (a `MoawTracker`); source: the generator it was fine-tuned from; target:
            another generator of the same architecture (e.g. an image-to-video fine-tune of `source`: its input
            projection may be wider, it is not used). None of them is modified.
    Returns:
        (the grafted MoawTracker in eval mode, {"update_norm": |tracker - source| / |source|, "target_gap":
        |target - source| / |source|} over the shared weights, both relative).
    Raises:
        TypeError / ValueError when the three are not the same family or their shared weights differ in shape.
    """
    if not isinstance(tracker, MoawTracker):
        raise TypeError(f"tracker: expected a MoawTracker, got {type(tracker).__name__}")
    fams = []
    for name, m in (("source", source), ("target", target)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name}: expected a diffusers generator model, got {type(m).__name__}")
        fams.append(family_of(m).name)
    if len({tracker.family.name, *fams}) != 1:
        raise ValueError(f"tracker/source/target: expected one model family, got {tracker.family.name}/"
                         f"{fams[0]}/{fams[1]}")
    io = _io_prefixes(tracker.backbone)
    t_sd, s_sd, g_sd = (m.state_dict() for m in (tracker.backbone, source, target))
    shared = [k for k in t_sd if not k.startswith(io)]
    for name, sd in (("source", s_sd), ("target", g_sd)):
        bad = [k for k in shared if k not in sd or sd[k].shape != t_sd[k].shape]
        extra = [k for k in sd if not k.startswith(io) and k not in t_sd]
        if bad or extra:
            raise ValueError(f"{name}: not the tracker's architecture ({len(bad) + len(extra)} weight(s) missing or "
                             f"of another shape, e.g. {(bad + extra)[0]!r}); a graft needs the same blocks")
    out = copy.deepcopy(tracker).float()
    new = out.backbone.state_dict()
    upd = ref = gap = 0.0
    with torch.no_grad():
        for k in shared:
            if not t_sd[k].is_floating_point():
                continue
            t, s, g = t_sd[k].float(), s_sd[k].float(), g_sd[k].float()
            new[k].copy_(g + (t - s))
            upd += float((t - s).pow(2).sum())
            gap += float((g - s).pow(2).sum())
            ref += float(s.pow(2).sum())
    ref = max(ref, 1e-30)
    return out.eval(), {"update_norm": math.sqrt(upd / ref), "target_gap": math.sqrt(gap / ref)}
