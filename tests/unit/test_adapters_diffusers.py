"""Adapters on tiny random-init diffusers models (real classes): detection, layers, fingerprints, token grids,
and the forward hooks of `attach` (capture shapes, removal, duplicates)."""
import functools

import pytest
import torch

from moaw_core.engine.adapters import all_adapters, check_compatible, detect
from moaw_core.engine.hooks import CaptureHook, attach

D = pytest.importorskip("diffusers")


@functools.lru_cache(maxsize=None)
def tiny(family: str, in_channels: int | None = None, seed: int = 0):
    """(model, forward kwargs, latent) for a tiny diffusers model of `family`, latent in the model's layout."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    if family == "wan":
        m = D.WanTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=in_channels or 4,
                                    out_channels=4, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2,
                                    rope_max_seq_len=32)
        return m, {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g)}, torch.randn(1, 4, 3, 8, 8, generator=g)
    if family == "cogvideox":
        m = D.CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=8, in_channels=in_channels or 4,
                                          out_channels=4, time_embed_dim=8, text_embed_dim=16, num_layers=2,
                                          sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
                                          temporal_compression_ratio=4, max_text_seq_length=5)
        return m, {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g)}, torch.randn(1, 3, 4, 8, 8, generator=g)
    if family == "hunyuan":
        m = D.HunyuanVideoTransformer3DModel(in_channels=in_channels or 4, out_channels=4, num_attention_heads=2,
                                             attention_head_dim=10, num_layers=1, num_single_layers=1,
                                             num_refiner_layers=1, patch_size=2, patch_size_t=1,
                                             guidance_embeds=False, text_embed_dim=16, pooled_projection_dim=8,
                                             rope_axes_dim=(2, 4, 4))
        kw = {"encoder_hidden_states": torch.randn(1, 5, 16, generator=g),
              "encoder_attention_mask": torch.ones(1, 5, dtype=torch.bool),
              "pooled_projections": torch.randn(1, 8, generator=g)}
        return m, kw, torch.randn(1, 4, 3, 8, 8, generator=g)
    if family == "svd":
        m = D.UNetSpatioTemporalConditionModel(
            sample_size=8, in_channels=in_channels or 8, out_channels=4,
            down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
            block_out_channels=(32, 64), addition_time_embed_dim=4, projection_class_embeddings_input_dim=12,
            layers_per_block=1, cross_attention_dim=16, num_attention_heads=(2, 4), num_frames=3)
        kw = {"encoder_hidden_states": torch.randn(1, 1, 16, generator=g), "added_time_ids": torch.zeros(1, 3)}
        return m, kw, torch.randn(1, 3, in_channels or 8, 8, 8, generator=g)
    raise ValueError(family)


EXPECTED = {  # family: (adapter, layer names, {layer: (T, H, W, C)})
    "wan": ("diffusers_wan", ["block.0", "block.1"], {"block.0": (3, 4, 4, 16), "block.1": (3, 4, 4, 16)}),
    "cogvideox": ("diffusers_cogvideox", ["block.0", "block.1"], {"block.1": (3, 4, 4, 16)}),
    "hunyuan": ("diffusers_hunyuan", ["double.0", "single.0"], {"double.0": (3, 4, 4, 20), "single.0": (3, 4, 4, 20)}),
    "svd": ("diffusers_svd", ["down.0", "down.1", "mid.0", "up.0", "up.1"],
            {"down.0": (3, 4, 4, 32), "down.1": (3, 4, 4, 64), "mid.0": (3, 4, 4, 64), "up.0": (3, 8, 8, 64),
             "up.1": (3, 8, 8, 32)}),
}


@pytest.mark.parametrize("family", list(EXPECTED))
def test_detect_layers_and_capture_shapes(family):
    m, kw, x = tiny(family)
    name, layers, shapes = EXPECTED[family]
    ad = detect(m)
    assert ad.name == name and [layer.name for layer in ad.layers(m)] == layers
    assert sum(a.detect(m) for a in all_adapters()) == 1
    cap = CaptureHook(ad, layers, dtype=torch.float32)
    with torch.no_grad(), attach(m, [cap], ad) as ctx:
        ctx.step, ctx.sigma = 0, 1.0
        ref = m(x, timestep=torch.tensor([500.0]), **kw)[0]
    assert sorted(cap.tensors) == sorted((layer, 0) for layer in layers)
    for layer, shape in shapes.items():
        assert tuple(cap.tensors[(layer, 0)].shape) == (1, *shape), layer
    # hooks are gone and the hooked pass equals a plain pass
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
    with torch.no_grad():
        assert torch.equal(m(x, timestep=torch.tensor([500.0]), **kw)[0], ref)


@pytest.mark.parametrize("family", ["wan", "svd"])
def test_grid_roundtrip(family):
    m, kw, x = tiny(family)
    ad = detect(m)
    seen = {}

    class Probe:
        name = "probe"

        def reset(self):
            pass

        def on_block(self, layer, hidden, ctx):
            grid = ad.to_grid(hidden, ctx.latent_grid)
            back = ad.from_grid(grid, hidden)
            seen[layer] = torch.equal(back, hidden)
            return back

    with torch.no_grad(), attach(m, [Probe()], ad):
        m(x, timestep=torch.tensor([10.0]), **kw)
    assert seen and all(seen.values())


def test_fingerprint_tracker_with_wider_input_matches():
    gen, _, _ = tiny("wan")
    tracker, _, _ = tiny("wan", in_channels=8, seed=5)
    fg, ft = detect(gen).fingerprint(gen), detect(tracker).fingerprint(tracker)
    assert fg == ft
    check_compatible(ft, fg)
    cog, _, _ = tiny("cogvideox")
    with pytest.raises(ValueError, match="architecture 'cogvideox'"):
        check_compatible(detect(cog).fingerprint(cog), fg)
    wide = D.WanTransformer3DModel(num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4,
                                   text_dim=16, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32)
    with pytest.raises(ValueError, match="width 32.*width 16"):
        check_compatible(detect(wide).fingerprint(wide), fg)


def test_attach_duplicate_and_cleanup_on_error():
    m, kw, x = tiny("wan")
    ad = detect(m)
    a, b = CaptureHook(ad, ["block.0"]), CaptureHook(ad, ["block.1"])
    with pytest.raises(ValueError, match="moaw_capture"):
        with attach(m, [a, b], ad):
            pass
    with attach(m, [a], ad):
        with pytest.raises(ValueError, match="already attached"):
            with attach(m, [b], ad):
                pass
    with pytest.raises(RuntimeError, match="boom"):
        with attach(m, [a], ad):
            raise RuntimeError("boom")
    assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
    with attach(m, [b], ad):  # name free again
        pass


def test_unsupported_model_type_error():
    with pytest.raises(TypeError, match="no Moaw adapter for model class .*Linear"):
        detect(torch.nn.Linear(2, 2))
