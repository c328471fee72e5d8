"""Model folders of the pack, registered with ComfyUI's folder_paths.

- `moaw_trackers`: tracker checkpoints (ComfyUI/models/moaw_trackers, plus the bundled tiny demo tracker).
- `moaw_codecs`: latent codecs of the bundled demo models (ComfyUI/models/moaw_codecs plus the bundled one).
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
_EXTENSIONS = {".safetensors"}


def register() -> None:
    """Idempotent: safe to call on every load."""
    for kind in (TRACKERS, CODECS):
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind), is_default=True)
        folder_list, exts = folder_paths.folder_names_and_paths[kind]
        folder_paths.folder_names_and_paths[kind] = (folder_list, set(exts) | _EXTENSIONS)
    for sub, folder in (("trackers", TRACKERS), ("generators", "diffusion_models"), ("codecs", CODECS)):
        path = os.path.join(BUNDLED_MODELS, sub)
        if os.path.isdir(path):
            folder_paths.add_model_folder_path(folder, path)
