"""One safetensors-read path (`moaw_core.files.read_safetensors`) behind every Moaw file kind: a missing file is
FileNotFoundError, a damaged one ValueError, both naming the kind of file and the path, for model files, feature
caches, DeT adapter files and codecs alike."""
import pytest

from moaw_core.det.files import load_adapters, read_metadata
from moaw_core.engine.checkpoint import read_checkpoint
from moaw_core.engine.features import MotionFeatures
from moaw_core.files import read_safetensors
from moaw_core.tracking.codecs import PatchPCACodec

READERS = [("checkpoint", read_checkpoint), ("MotionFeatures.load", MotionFeatures.load),
           ("DeT adapter file", read_metadata), ("DeT adapter file", load_adapters),
           ("codec path", PatchPCACodec.load)]


@pytest.mark.parametrize("what,reader", READERS)
def test_missing_and_damaged_files_fail_the_same_way(tmp_path, what, reader):
    with pytest.raises(FileNotFoundError, match=f"{what}: no such file .*nope.safetensors"):
        reader(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    for content in (b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"x" * 64):
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=f"{what}: .*bad.safetensors is not a readable safetensors file"):
            reader(bad)


def test_read_safetensors_metadata_only(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "f.safetensors"
    save_file({"a": torch.ones(2)}, str(path), metadata={"k": "v"})
    assert read_safetensors(path, "x", tensors=False) == ({}, {"k": "v"})
    sd, meta = read_safetensors(path, "x")
    assert torch.equal(sd["a"], torch.ones(2)) and meta == {"k": "v"}
