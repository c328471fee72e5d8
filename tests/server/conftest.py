"""A real ComfyUI server (`main.py --cpu`) on a free loopback port with this pack loaded, shared by the
server tests of a session and always shut down (see `hosttools.running_server`). Its base directory is a
temporary folder holding `custom_nodes/moaw` (a link to this checkout), tiny random-init models and the
workflows' input images (`workflows/inputs/`)."""
from __future__ import annotations

import shutil

import pytest
from safetensors.torch import save_file

import hosttools as H


def _write_models(base) -> None:
    d = base / "models" / "diffusion_models"
    d.mkdir(parents=True, exist_ok=True)
    save_file(H.tiny_wan_state_dict(num_layers=2, seed=0), str(d / "tiny_wan_t2v.safetensors"))
    (base / "input").mkdir(parents=True, exist_ok=True)
    for image in (H.ROOT / "workflows" / "inputs").glob("*.png"):  # the workflows' LoadImage files
        shutil.copy(image, base / "input" / image.name)


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    H.require_host()
    base = tmp_path_factory.mktemp("comfy_base")
    _write_models(base)
    with H.running_server(base) as server:
        yield server
