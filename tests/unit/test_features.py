"""MotionFeatures: keys, metadata, file format (one safetensors, atomic), byte accounting, validation."""
import json
import os

import pytest
import torch

from moaw_core.engine.features import FORMAT_VERSION, MotionFeatures, store_tensor

FP = {"family": "wan", "adapter": "comfy_wan", "host": "comfy", "layers": {"block": 2}, "width": 8,
      "blocks_sha1": "x"}


def _feats(dtype=torch.float16, steps=3, layers=("block.0", "block.1")):
    g = torch.Generator().manual_seed(0)
    t = {(layer, s): torch.randn(1, 2, 3, 4, 8, generator=g).to(dtype) for layer in layers for s in range(steps)}
    return MotionFeatures(t, "comfy_wan", FP, (1, 16, 2, 6, 8), [1.0, 0.7, 0.4][:steps], source="unit")


def test_views_and_nearest_step():
    f = _feats()
    assert f.layers == ("block.0", "block.1") and f.steps == (0, 1, 2)
    assert f.grid("block.0") == (2, 3, 4) and f.width("block.1") == 8 and f.family == "wan"
    assert f.nearest_step(0.95) == 0 and f.nearest_step(0.5) == 2 and f.nearest_step(0.0) == 2
    assert f.timesteps == f.sigmas
    with pytest.raises(KeyError, match="unknown layer 'block.9'"):
        f.grid("block.9")


def test_save_load_roundtrip(tmp_path):
    f = _feats()
    path = f.save(tmp_path / "sub" / "feats.safetensors")
    assert os.listdir(path.parent) == ["feats.safetensors"]  # no temp files left behind
    g = MotionFeatures.load(path)
    assert g.layers == f.layers and g.steps == f.steps and g.sigmas == f.sigmas
    assert g.fingerprint == FP and g.latent_shape == (1, 16, 2, 6, 8) and g.source == "unit"
    for k, v in f.tensors.items():
        assert g.tensors[k].dtype == torch.float16 and torch.equal(g.tensors[k], v)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as sf:
        assert sorted(sf.keys()) == sorted(f"{layer}/{s:04d}" for layer, s in f.tensors)
        meta = sf.metadata()
    assert meta["moaw_format"] == FORMAT_VERSION
    assert json.loads(meta["moaw_meta"])["grids"]["block.0"] == [2, 3, 4]


def test_nbytes_matches_storage_and_file(tmp_path):
    f = _feats()
    expected = len(f.tensors) * 1 * 2 * 3 * 4 * 8 * 2
    assert f.nbytes == expected
    # no hidden copies: each tensor owns exactly its bytes
    assert sum(t.untyped_storage().nbytes() for t in f.tensors.values()) == expected
    size = f.save(tmp_path / "f.safetensors").stat().st_size
    assert expected < size < expected + 8192  # payload + JSON header


def test_store_tensor_drops_views():
    big = torch.randn(10, 1, 2, 3, 4, 8)
    view = big[3:4]
    kept = store_tensor(view, torch.float32)
    assert kept.untyped_storage().nbytes() == view.numel() * 4 and torch.equal(kept, view)
    assert kept.data_ptr() != view.data_ptr()


def test_subset_shares_tensors_and_checks():
    f = _feats()
    s = f.subset(["block.1"])
    assert s.layers == ("block.1",) and s.tensors[("block.1", 0)] is f.tensors[("block.1", 0)]
    with pytest.raises(ValueError, match="empty"):
        f.subset([])
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        f.subset(["nope"])


def test_nan_rejected(tmp_path):
    f = _feats(torch.float32)
    f.tensors[("block.0", 1)][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="block.0/0001 contains NaN"):
        f.validate()
    with pytest.raises(ValueError, match="NaN"):
        f.save(tmp_path / "nan.safetensors")


def test_truncated_and_foreign_files(tmp_path):
    path = _feats().save(tmp_path / "f.safetensors")
    data = path.read_bytes()
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        MotionFeatures.load(bad)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="foreign.safetensors.*not a Moaw feature cache"):
        MotionFeatures.load(foreign)
    with pytest.raises(FileNotFoundError, match="missing"):
        MotionFeatures.load(tmp_path / "missing.safetensors")


def test_constructor_validation():
    with pytest.raises(ValueError, match="no tensors"):
        MotionFeatures({}, "comfy_wan", FP, (1,), [1.0])
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\]"):
        MotionFeatures({("block.0", 0): torch.zeros(2, 3)}, "comfy_wan", FP, (1,), [1.0])
    with pytest.raises(ValueError, match="outside sigmas"):
        MotionFeatures({("block.0", 4): torch.zeros(1, 1, 1, 1, 1)}, "comfy_wan", FP, (1,), [1.0])
