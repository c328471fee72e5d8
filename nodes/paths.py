"""Model folders of the pack, registered with ComfyUI's folder_paths.

- `moaw_trackers`: tracker checkpoints (ComfyUI/models/moaw_trackers, plus the bundled tiny demo tracker).
- `moaw_codecs`: latent codecs of the bundled demo models (ComfyUI/models/moaw_codecs plus the bundled one).
- `moaw_det`: DeT adapter files (ComfyUI/models/moaw_det), written by Save DeT Adapters.
- `diffusion_models` also lists the bundled tiny demo generator, so a user with no big weights can run the
  demo workflow with the core loader.
"""
from __future__ import annotations

import os

import folder_paths

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MODELS = os.path.join(PACK_ROOT, "models")
TRACKERS = "moaw_trackers"
CODECS = "moaw_codecs"
DET = "moaw_det"
_EXTENSIONS = {".safetensors"}


def register() -> None:
    """Idempotent: safe to call on every load."""
    for kind in (TRACKERS, CODECS, DET):
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind), is_default=True)
        folder_list, exts = folder_paths.folder_names_and_paths[kind]
        folder_paths.folder_names_and_paths[kind] = (folder_list, set(exts) | _EXTENSIONS)
    for sub, folder in (("trackers", TRACKERS), ("generators", "diffusion_models"), ("codecs", CODECS)):
        path = os.path.join(BUNDLED_MODELS, sub)
        if os.path.isdir(path):
            folder_paths.add_model_folder_path(folder, path)


def det_path(name: str) -> str:
    """models/moaw_det/<name>.safetensors for a plain file name (ValueError for folders or an empty name)."""
    base = str(name).strip()
    if base.endswith(".safetensors"):
        base = base[: -len(".safetensors")]
    if not base or os.path.basename(base) != base or base in (".", ".."):
        raise ValueError(f"name: expected a plain file name without folders, got {name!r}")
    folder = folder_paths.get_folder_paths(DET)[0]
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, base + ".safetensors")
