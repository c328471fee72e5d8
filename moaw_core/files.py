"""Reading safetensors files with one error path for every Moaw file kind (model files, feature caches, DeT
adapters, codecs): a missing file raises FileNotFoundError and an unreadable one (truncated, foreign, not
safetensors) ValueError, each naming the kind of file and its path. (The MOFT channel files are JSON.)"""
from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file


def read_safetensors(path, what: str, tensors: bool = True) -> tuple[dict, dict[str, str]]:
    """Read a safetensors file. Returns (tensors on CPU, or {} when `tensors` is False; metadata, {} if none).

    Args:
        path: the file. what: the kind of file, first word of every error ("checkpoint", "codec path", ...).
        tensors: False reads the metadata only (a check before loading anything big).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        sd = load_file(str(path)) if tensors else {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{what}: {path} is not a readable safetensors file (truncated or foreign?): "
                         f"{str(err)[:200]}") from None
    return sd, meta
