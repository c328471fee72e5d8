"""diffusers Wan <-> original Wan key mapping: round trip, ComfyUI's own loader, same forward output."""
from __future__ import annotations

import pytest
import torch

from moaw_core.engine.convert import (diffusers_to_wan, native_to_diffusers_model, wan_config_from_native,
                               wan_to_diffusers)
from moaw_core.tracking.tracker import build_wan
from tests import hosttools

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _perturbed(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


def test_round_trip_diffusers_native_diffusers():
    m = build_wan(num_layers=2)
    sd = m.state_dict()
    native = diffusers_to_wan(sd)
    for key in ("patch_embedding.weight", "head.head.weight", "head.modulation", "blocks.1.self_attn.q.weight",
                "blocks.0.cross_attn.norm_k.weight", "blocks.0.norm3.weight", "blocks.1.modulation",
                "time_projection.1.weight", "text_embedding.0.weight", "blocks.0.ffn.2.bias"):

        assert key in native, key
    back = wan_to_diffusers(native)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    cfg = wan_config_from_native(native)
    assert (cfg["num_layers"], cfg["in_channels"], cfg["out_channels"], cfg["ffn_dim"]) == (2, 16, 16, 256)


def test_prefixed_native_and_model_rebuild():
    native = diffusers_to_wan(build_wan(num_layers=1, in_channels=48, out_channels=32).state_dict())
    prefixed = {"model.diffusion_model." + k: v for k, v in native.items()}
    model = native_to_diffusers_model(prefixed)
    assert (model.config.in_channels, model.config.out_channels) == (48, 32)


def test_foreign_state_dicts_raise():
    with pytest.raises(ValueError, match="diffusers WanTransformer3DModel"):
        diffusers_to_wan({"conv_in.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="original-format Wan"):
        wan_to_diffusers({"double_blocks.0.img_attn.qkv.weight": torch.zeros(1)})
    sd = build_wan(num_layers=1).state_dict()
    sd["blocks.0.lora_A.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="lora_A"):
        diffusers_to_wan(sd)
    with pytest.raises(ValueError, match="missing"):
        wan_config_from_native({"head.modulation": torch.zeros(1, 2, 128)})


@pytest.mark.host
def test_comfyui_loads_converted_and_matches_diffusers():
    hosttools.require_host()
    m = _perturbed(build_wan(num_layers=2, in_channels=48, out_channels=32))  # a tracker-shaped model
    patcher = hosttools.load_native(diffusers_to_wan(m.state_dict()))
    assert type(patcher.model.model_config).__name__ == "WAN21_T2V"
    native = patcher.model.diffusion_model.float()
    x, t, ctx = torch.randn(1, 48, 3, 8, 8), torch.tensor([500.0]), torch.zeros(1, 1, 4096)
    with torch.no_grad():
        a = m(x, t, ctx, return_dict=False)[0]
        b = native(x, t, ctx)
    assert a.shape == b.shape == (1, 32, 3, 8, 8)
    assert torch.allclose(a, b.float(), atol=1e-4), float((a - b).abs().max())
    # and the other direction: a ComfyUI-native random model through wan_to_diffusers
    sd = hosttools.tiny_wan_state_dict(num_layers=1)
    dm = native_to_diffusers_model(sd).eval()
    assert set(diffusers_to_wan(dm.state_dict())) == set(sd)


@pytest.mark.host
@pytest.mark.parametrize("name", ["generators/moaw_tiny_wan_generator", "trackers/moaw_tiny_wan_tracker"])
def test_comfyui_loads_shipped_models(name):
    from moaw_core.engine.checkpoint import read_checkpoint
    path = hosttools.ROOT / "models" / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path} not trained yet (docs/TRAINING.md)")
    hosttools.require_host()
    sd, meta = read_checkpoint(path)
    patcher = hosttools.load_native(sd)
    assert type(patcher.model.model_config).__name__ == "WAN21_T2V"
    in_ch = 16 if meta["moaw.kind"] == "generator" else 48
    assert patcher.model.diffusion_model.patch_embedding.weight.shape[1] == in_ch
