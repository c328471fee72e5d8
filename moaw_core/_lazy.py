"""Lazy re-exports for the package `__init__`s: `from moaw_core.engine import generate` works, but importing the
package imports none of its modules (nor torch) until a name is used.

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"generate": "transfer", ...})
"""
from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, names: dict[str, str]):
    """(`__getattr__`, `__dir__`, `__all__`) for `package` re-exporting `name` from `package.<module>`."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__, sorted(names)
