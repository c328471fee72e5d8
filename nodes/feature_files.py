"""Feature-cache files in ComfyUI's output folder (output/moaw_features): names, counters, listing, fingerprint.

Not a node module (no NODES). Saving follows core SaveImage / SaveLatent: the name the artist types is a
prefix and every save writes a new `<name>_00001_.safetensors`, `<name>_00002_.safetensors`, ... so nothing
already saved is overwritten. Names with folders (`a/b`, `../x`, `/abs/x`) are refused, not shortened, so
two different names never land on one file.
"""
from __future__ import annotations

import hashlib
import os
import re
import time

import folder_paths

FEATURES_DIR = "moaw_features"
SUFFIX = ".safetensors"
STALE_SECONDS = 3600  # a temp file this old is left over from a killed save (a live save rewrites it faster)
_MAX_NAME = 120
_BAD_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')
_STALE_TEMP = re.compile(r"^\..+\.tmp$|^\.tmp[A-Za-z0-9]{6}$")  # ours (MotionFeatures.save) and safetensors' own


def features_dir() -> str:
    return os.path.join(folder_paths.get_output_directory(), FEATURES_DIR)


def check_name(name: str, what: str = "name") -> str:
    """The cache name (prefix) without a trailing '.safetensors'. ValueError for anything but a plain file name."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what}: give a file name such as 'motion', got {name!r:.60}")
    clean = name.strip()
    if clean.endswith(SUFFIX):
        clean = clean[: -len(SUFFIX)]
    if "/" in clean or "\\" in clean or os.path.isabs(clean) or clean in (".", "..") or clean.startswith("."):
        raise ValueError(f"{what} {name!r:.60} is not a plain file name: folders and leading dots are not allowed "
                         f"(files go to output/{FEATURES_DIR}/)")
    if _BAD_CHARS.search(clean) or len(clean) > _MAX_NAME:
        raise ValueError(f"{what} {name!r:.60} is not a plain file name: use at most {_MAX_NAME} letters, digits, "
                         f"spaces, '-', '_' or '.'")
    return clean


def saved_path(prefix: str, counter: int) -> str:
    return os.path.join(features_dir(), f"{prefix}_{counter:05d}_{SUFFIX}")


def next_counter(prefix: str) -> int:
    """1 + the highest counter of `<prefix>_NNNNN_.safetensors` already in the folder (SaveImage's rule)."""
    pattern = re.compile(re.escape(prefix) + r"_(\d{5,})_" + re.escape(SUFFIX) + "$")
    try:
        names = os.listdir(features_dir())
    except FileNotFoundError:
        return 1
    return max((int(m[1]) for f in names if (m := pattern.match(f))), default=0) + 1


def save_new(features, name: str, what: str = "name") -> str:
    """Write `features` to a new counter-suffixed file (never over an existing one). Returns the path."""
    prefix = check_name(name, what)
    os.makedirs(features_dir(), exist_ok=True)
    remove_stale_temps()
    counter = next_counter(prefix)
    for _ in range(100):  # another save may take a counter between listing and linking
        try:
            return str(features.save(saved_path(prefix, counter), overwrite=False))
        except FileExistsError:
            counter += 1
    raise FileExistsError(f"{what}: could not find a free file name for {prefix!r} in {features_dir()}")


def remove_stale_temps(now: float | None = None) -> list[str]:
    """Delete temp files left in the folder by saves that were killed (older than STALE_SECONDS)."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(features_dir()))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.is_file() and _STALE_TEMP.match(entry.name) and now - entry.stat().st_mtime > STALE_SECONDS:
            try:
                os.unlink(entry.path)
                removed.append(entry.name)
            except FileNotFoundError:
                pass
    return removed


def list_files() -> list[str]:
    """Feature caches offered by LoadMotionFeatures (temp files and anything else are not listed)."""
    try:
        names = os.listdir(features_dir())
    except FileNotFoundError:
        return []
    return sorted(f for f in names if f.endswith(SUFFIX) and not f.startswith("."))


def existing_path(name: str) -> str:
    """The file LoadMotionFeatures reads: a plain name listed in the folder. ValueError / FileNotFoundError."""
    prefix = check_name(name)
    path = os.path.join(features_dir(), prefix + SUFFIX)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"name: no feature cache {prefix + SUFFIX!r} in {features_dir()} "
                                f"(saved files are named <name>_00001_.safetensors; refresh the node list)")
    return path


def fingerprint(path: str) -> str:
    """Changes whenever the file is replaced or rewritten: mtime (ns), size, inode and a hash of its header,
    first and last MiB (hashing all of a multi-GB cache on every queued prompt would be too slow)."""
    st = os.stat(path)
    h = hashlib.sha256(f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()
