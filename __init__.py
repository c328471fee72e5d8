"""ComfyUI entry point of the Moaw motion-transfer node pack.

ComfyUI imports this file as a package. The host-agnostic library `moaw_core` lives next to it and is
imported absolutely, so the pack folder is appended to `sys.path` (appended, not prepended, so that
ComfyUI's own top-level `nodes` module keeps precedence over this pack's `nodes/` package).
"""
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

if importlib.util.find_spec("folder_paths") is None:
    # Imported outside ComfyUI, e.g. by pytest collecting the repository as a package: nothing to register.
    __all__ = []
else:
    try:
        from comfy_api.latest import ComfyExtension, io  # noqa: F401
    except ImportError as exc:
        raise ImportError("Moaw needs ComfyUI >= 0.3.75 (the V3 node API `comfy_api.latest`); "
                          "please update ComfyUI.") from exc
    from .nodes import comfy_entrypoint  # noqa: E402

    WEB_DIRECTORY = "./web"  # moaw_text.js: shows Select Motion Layers' chosen layers on the node
    __all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
