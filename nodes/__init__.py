"""ComfyUI nodes of the pack (V3 schema). Each `nodes/<topic>.py` defines `NODES`; they are collected here."""
from __future__ import annotations

import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io

_NOT_NODE_MODULES = {"types", "bridge", "det_bridge", "paths", "moft_host"}


def all_nodes() -> list[type[io.ComfyNode]]:
    """Every node class of the pack, in module order. An import error in a node module is raised, not hidden."""
    from . import paths

    paths.register()  # node schemas list the pack's model folders
    found: list[type[io.ComfyNode]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in _NOT_NODE_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "NODES", []))
    return found


class MoawExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> MoawExtension:
    return MoawExtension()
