"""Injection math (pure functions) and InjectHook on token grids."""
import logging

import pytest
import torch

from moaw_core.engine.adapters import get_adapter
from moaw_core.engine.features import MotionFeatures
from moaw_core.engine.hooks import HookContext, InjectHook
from moaw_core.engine.inject import (InjectConfig, combine, inject_grid, mask_to_grid, normalize_to, remove_content,
                              resample_grid, step_active, step_index)

G = torch.Generator().manual_seed(0)
H = torch.randn(2, 3, 4, 4, 8, generator=G)
F = torch.randn(1, 3, 4, 4, 8, generator=G)


def test_modes():
    assert torch.allclose(combine(H, F.expand_as(H), "add", 0.5), H + 0.5 * F)
    assert torch.equal(combine(H, F.expand_as(H), "replace", 0.3), F.expand_as(H))
    assert torch.allclose(combine(H, F.expand_as(H), "blend", 0.25), H + 0.25 * (F - H))
    m = torch.zeros(1, 3, 4, 4, 1)
    m[:, :, :2] = 1
    out = combine(H, F.expand_as(H), "replace", 1.0, m)
    assert torch.allclose(out[:, :, :2], F.expand_as(H)[:, :, :2]) and torch.equal(out[:, :, 2:], H[:, :, 2:])


def test_strength_zero_add_is_identity():
    assert torch.equal(inject_grid(H, F, InjectConfig(strength=0.0)), H)


def test_content_removal_and_normalisation():
    static = F[:, :1].expand(1, 3, 4, 4, 8)  # no motion: identical frames
    assert remove_content(static).abs().max() < 1e-6
    n = normalize_to(F * 5 + 3, H)
    assert torch.allclose(n.mean((1, 2, 3)), H.mean((1, 2, 3)), atol=1e-5)
    assert torch.allclose(n.std((1, 2, 3)), H.std((1, 2, 3)), atol=1e-4)


def test_resample_warns_or_raises(caplog):
    small = torch.randn(1, 2, 2, 2, 8)
    with caplog.at_level(logging.WARNING, logger="moaw"):
        out = resample_grid(small, (3, 4, 4), allow=True)
    assert out.shape == (1, 3, 4, 4, 8) and "resampling" in caplog.text
    const = torch.ones(1, 2, 2, 2, 8)
    assert torch.allclose(resample_grid(const, (5, 3, 7), allow=True), torch.ones(1, 5, 3, 7, 8))
    with pytest.raises(ValueError, match="frame count or resolution differ.*resample=True"):
        resample_grid(small, (3, 4, 4), allow=False)


def test_mask_resized_to_grid():
    m = mask_to_grid(torch.ones(16, 16), (3, 4, 4))
    assert m.shape == (1, 3, 4, 4, 1) and torch.allclose(m, torch.ones_like(m))
    assert mask_to_grid(torch.zeros(2, 8, 8), (3, 4, 4)).abs().max() == 0


def test_window_and_step_index():
    assert step_index(0.5, [1.0, 0.75, 0.5, 0.25, 0.0]) == 2
    active = [step_active(i, 10, 0.2, 0.5) for i in range(10)]
    assert active == [False, False, True, True, True, False, False, False, False, False]
    assert not any(step_active(i, 10, 0.5, 0.5) for i in range(10))


def test_config_validation():
    with pytest.raises(ValueError, match="empty"):
        InjectConfig(layers=())
    with pytest.raises(ValueError, match="mode"):
        InjectConfig(mode="mul")
    with pytest.raises(ValueError, match="branch"):
        InjectConfig(branch="uncond")
    with pytest.raises(ValueError, match="start/end"):
        InjectConfig(start=-0.1)
    with pytest.raises(ValueError, match="mask"):
        InjectConfig(mask=torch.zeros(4))
    assert InjectConfig(layers="block.1").layers == ("block.1",)
    for bad in (float("nan"), float("inf"), -float("inf"), "1", True):
        with pytest.raises(ValueError, match="strength must be a finite number"):
            InjectConfig(strength=bad)
    with pytest.raises(ValueError, match="end must be a finite number"):
        InjectConfig(end=float("nan"))
    with pytest.raises(ValueError, match="window is empty"):  # would silently inject nothing
        InjectConfig(start=0.5, end=0.5)
    with pytest.raises(ValueError, match="window is empty"):
        InjectConfig(start=0.8, end=0.2)


def test_width_mismatch():
    with pytest.raises(ValueError, match="16 channels.*8"):
        inject_grid(H, torch.randn(1, 3, 4, 4, 16), InjectConfig())


def _hook(cfg, tokens_f):
    ad = get_adapter("comfy_wan")
    feats = MotionFeatures({("block.0", 0): tokens_f, ("block.0", 1): tokens_f * 2}, "comfy_wan",
                           {"family": "wan"}, (1, 16, 3, 8, 8), [1.0, 0.5])
    return InjectHook(feats, cfg, ad), ad


def test_inject_hook_cond_rows_and_nearest_step():
    hook, ad = _hook(InjectConfig(mode="replace"), F)
    hidden = torch.randn(2, 3 * 4 * 4 + 5, 8)  # two chunks (cond, uncond), 5 extra (non-video) tokens
    ctx = HookContext(sigma=0.6, step=3, n_steps=4, cond_or_uncond=(1, 0), latent_grid=(3, 8, 8))
    out = hook.on_block("block.0", hidden, ctx)
    assert torch.equal(out[0], hidden[0])  # uncond untouched
    assert torch.allclose(out[1, :48], (F * 2).flatten(1, 3)[0]) and torch.equal(out[1, 48:], hidden[1, 48:])
    assert hook.on_block("block.1", hidden, ctx) is hidden
    with pytest.raises(ValueError, match="unknown layer 'block.7'"):
        _hook(InjectConfig(layers=("block.7",)), F)


def test_inject_hook_window():
    hook, _ = _hook(InjectConfig(mode="add", start=0.5, end=1.0), F)
    hidden = torch.randn(1, 48, 8)
    ctx = HookContext(sigma=1.0, step=0, n_steps=4, latent_grid=(3, 8, 8))
    assert hook.on_block("block.0", hidden, ctx) is hidden
    ctx.step = 2
    assert not torch.equal(hook.on_block("block.0", hidden, ctx), hidden)


def test_hooks_reset_after_a_run_by_their_flag_not_their_type():
    """`attach` ends every run by resetting the hooks that say they hold per-run state (`reset_after_run`), of
    any class (a MOFT tap, a user's hook), and keeps a CaptureHook's recordings."""
    from moaw_core.engine.backbones import build_wan
    from moaw_core.engine.hooks import CaptureHook, attach
    from moaw_core.engine.adapters import detect
    from moaw_core.moft.guidance import FeatureTap

    class Counting:  # not an InjectHook: only the flag can ask for the reset
        reset_after_run, name = True, "counting"

        def __init__(self):
            self.resets, self.seen = 0, 0

        def reset(self):
            self.resets += 1

        def on_block(self, layer, hidden, ctx):
            self.seen += 1
            return hidden

    model = build_wan(num_layers=1, seed=0).eval()
    adapter = detect(model)
    own, cap, tap = Counting(), CaptureHook(adapter, ["block.0"], dtype=torch.float32), FeatureTap(adapter, "block.0")
    x = torch.zeros(1, 16, 2, 4, 4)
    with torch.no_grad(), attach(model, [own, cap, tap], adapter) as ctx:
        ctx.step = 0
        tap.armed = False
        model(x, torch.tensor([500.0]), torch.zeros(1, 1, 4096), return_dict=False)
        tap.armed = True  # left armed, as a run interrupted between guided steps would leave it
    assert own.seen == 1 and own.resets == 1
    assert not tap.armed
    assert ("block.0", 0) in cap.tensors  # the recordings are the capture's result
