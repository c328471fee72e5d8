"""nodes/bridge.py on a tiny native Wan: clone-only patching, run-state reset, interrupts, tracker capture,
branch selection, and clear errors for bad inputs."""
import copy
import logging

import pytest
import torch

import hosttools as H

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def env():
    comfy = H.import_comfy()
    p = H.load_native(H.tiny_wan_state_dict(num_layers=2))
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 16, 3, 8, 8, generator=g)
    cond = [[torch.randn(1, 4, 4096, generator=g), {}]]
    neg = [[torch.randn(1, 4, 4096, generator=g), {}]]
    B = H.load_bridge()
    feats = B.capture_comfy(p, {"samples": noise}, cond, neg, 3, ["block.0", "block.1"], seed=2)
    return comfy, B, p, noise, cond, neg, feats


def _sample(comfy, m, noise, cond, neg, cfg=1.0, callback=None, steps=3):
    return comfy.sample.sample(m, noise, steps, cfg, "euler", "simple", cond, neg, torch.zeros_like(noise), seed=0,
                               disable_pbar=True, callback=callback)


def _state(p):
    return repr(p.model_options), repr(p.wrappers), repr(p.callbacks), dict(p.attachments), repr(p.object_patches)


def test_capture_metadata(env):
    comfy, B, p, noise, cond, neg, feats = env
    assert feats.layers == ("block.0", "block.1") and feats.steps == (0, 1, 2)
    assert feats.sigmas[0] == pytest.approx(1.0) and feats.sigmas == tuple(sorted(feats.sigmas, reverse=True))
    assert feats.latent_shape == (1, 16, 3, 8, 8) and feats.family == "wan"
    assert feats.extra["mode"] == "training_free" and feats.nbytes == 6 * 3 * 4 * 4 * 128 * 2


def test_clone_only_and_shared_cache(env):
    comfy, B, p, noise, cond, neg, feats = env
    from moaw_core.engine.inject import InjectConfig

    before = _state(p)
    m = B.apply_injection(p, feats, InjectConfig(strength=0.5))
    assert _state(p) == before and m is not p
    binding = m.get_attachment("moaw")
    assert copy.deepcopy(m.model_options)["transformer_options"]["patches_replace"]["dit"][
        ("double_block", 0)].binding is binding  # clone() never copies the cache
    m2 = m.clone()
    assert m2.get_attachment("moaw") is binding
    out = _sample(comfy, m2, noise, cond, neg)
    assert _state(p) == before and torch.isfinite(out).all()
    assert binding.hooks[0]._cache == {}  # reset in the OUTER_SAMPLE finally
    again = B.apply_injection(m, feats, InjectConfig(strength=0.5))  # re-applying replaces, not stacks
    torch.testing.assert_close(_sample(comfy, again, noise, cond, neg), out)


def test_interrupt_leaves_nothing_patched(env):
    comfy, B, p, noise, cond, neg, feats = env
    import comfy.model_management as mm
    from moaw_core.engine.inject import InjectConfig

    before = _state(p)
    m = B.apply_injection(p, feats, InjectConfig(strength=0.5))
    binding = m.get_attachment("moaw")

    def stop(step, *_):
        if step == 1:
            raise mm.InterruptProcessingException()

    with pytest.raises(mm.InterruptProcessingException):
        _sample(comfy, m, noise, cond, neg, callback=stop)
    assert _state(p) == before and binding.hooks[0]._cache == {} and binding.ctx.step is None
    plain = _sample(comfy, p, noise, cond, neg)
    assert torch.equal(plain, _sample(comfy, p, noise, cond, neg))
    assert not any(mod._forward_hooks for mod in p.model.diffusion_model.modules())
    # the interrupt flag stops a hand loop (capture) too, and is consumed
    mm.interrupt_current_processing(True)
    with pytest.raises(mm.InterruptProcessingException):
        B.capture_comfy(p, {"samples": noise}, cond, neg, 3, ["block.0"], seed=2)
    assert _state(p) == before


def test_branch_cond_only_vs_both(env):
    comfy, B, p, noise, cond, neg, feats = env
    from moaw_core.engine.inject import InjectConfig

    plain = _sample(comfy, p, noise, cond, neg, cfg=3.0)
    c = _sample(comfy, B.apply_injection(p, feats, InjectConfig(strength=0.5)), noise, cond, neg, cfg=3.0)
    both = _sample(comfy, B.apply_injection(p, feats, InjectConfig(strength=0.5, branch="both")), noise, cond, neg,
                   cfg=3.0)
    assert not torch.allclose(c, plain) and not torch.allclose(c, both)


def test_tracker_mode_concats_source(env):
    comfy, B, p, noise, cond, neg, feats = env
    from moaw_core.engine.inject import InjectConfig

    tracker = H.load_native(H.tiny_wan_state_dict(num_layers=2, in_dim=32, seed=3))
    src = {"samples": torch.randn(1, 16, 3, 8, 8)}
    tf, tracks = B.capture_comfy(tracker, {"samples": torch.zeros(1, 16, 3, 8, 8)}, cond, neg, 3, ["block.1"],
                                 seed=0, mode="tracker", source_concat=src, return_samples=True)
    assert tf.steps == (0, 1, 2) and tracks.shape == (1, 16, 3, 8, 8) and tf.extra["mode"] == "tracker"
    other = B.capture_comfy(tracker, {"samples": torch.zeros(1, 16, 3, 8, 8)}, cond, neg, 3, ["block.1"], seed=0,
                            mode="tracker", source_concat={"samples": torch.randn(1, 16, 3, 8, 8)})
    assert not torch.equal(other.get("block.1", 2), tf.get("block.1", 2))  # the source conditions the tracker
    # a tracker with a wider input projection injects into its generator
    out = _sample(comfy, B.apply_injection(p, tf, InjectConfig()), noise,
                  cond, neg)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="only used in mode='tracker'"):
        B.capture_comfy(tracker, {"samples": noise}, cond, neg, 3, ["block.1"], source_concat=src)
    with pytest.raises(ValueError, match="do not add up"):
        B.capture_comfy(p, {"samples": noise}, cond, neg, 3, ["block.1"], mode="tracker", source_concat=src)


def test_resampling(env, caplog):
    comfy, B, p, noise, cond, neg, feats = env
    from moaw_core.engine.inject import InjectConfig

    longer = torch.randn(1, 16, 5, 8, 8)
    with pytest.raises(ValueError, match="frame count or resolution differ"):
        _sample(comfy, B.apply_injection(p, feats, InjectConfig(resample=False)), longer, cond, neg)
    with caplog.at_level(logging.WARNING, logger="moaw"):
        out = _sample(comfy, B.apply_injection(p, feats, InjectConfig()), longer, cond, neg)
    assert "resampling" in caplog.text and out.shape == longer.shape


def test_bad_inputs(env):
    comfy, B, p, noise, cond, neg, feats = env
    from moaw_core.engine.features import MotionFeatures
    from moaw_core.engine.inject import InjectConfig

    wide = H.load_native(H.tiny_wan_state_dict(num_layers=2, dim=256))
    with pytest.raises(ValueError, match="width 128.*width 256"):
        B.apply_injection(wide, feats, InjectConfig())
    hy = H.tiny_hunyuan_video()
    with pytest.raises(ValueError, match="architecture 'wan'.*'hunyuan_video'"):
        B.apply_injection(hy, feats, InjectConfig())
    with pytest.raises(ValueError, match="empty"):
        B.apply_injection(p, feats, InjectConfig(layers=()))
    with pytest.raises(ValueError, match="unknown layer 'block.5'"):
        B.apply_injection(p, feats, InjectConfig(layers=("block.5",)))
    with pytest.raises(ValueError, match=r"unknown layer name\(s\) \['double.0'\]"):
        B.capture_comfy(p, {"samples": noise}, cond, neg, 2, ["double.0"])
    bad = MotionFeatures({k: v.clone() for k, v in feats.tensors.items()}, feats.adapter, feats.fingerprint,
                         feats.latent_shape, feats.sigmas)
    bad.tensors[("block.0", 1)][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        B.apply_injection(p, bad, InjectConfig())
    with pytest.raises(TypeError, match="MotionFeatures"):
        B.apply_injection(p, {"block.0": 1}, InjectConfig())
