"""A rendered-once cache of synthetic clips (`moaw_core.data.synth.SynthDataset`, or the 3-D scenes of
`moaw_core.data.scenes3d.Scenes3DDataset` for a `Scene3DConfig`) in one safetensors file.

Rendering costs ~20-40 ms per 8x64x64 clip on one CPU core (too slow to feed a GPU from one process), so
the trainer renders a fixed pool once and reuses it. Layout: `video` uint8 [N,T,H,W,3], `tracks`
float16 [N,T,H,W,4] (`pack_tracks` order: x, y, visible, depth); metadata names the SynthConfig,
length and seed so a stale cache is rebuilt rather than silently reused.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from moaw_core.data.scenes3d import Scene3DConfig, Scenes3DDataset
from moaw_core.data.synth import SynthConfig, SynthDataset
from moaw_core.tracking.tracks import DenseTracks, unpack_tracks


def _key(cfg: SynthConfig | Scene3DConfig, length: int, seed: int) -> str:
    key = {"cfg": dataclasses.asdict(cfg), "length": length, "seed": seed}
    if isinstance(cfg, Scene3DConfig):
        key["kind"] = "scenes3d"
    return json.dumps(key, sort_keys=True)


def _dataset(cfg: SynthConfig | Scene3DConfig, length: int, seed: int):
    if isinstance(cfg, Scene3DConfig):
        return Scenes3DDataset(cfg, length, seed)
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"cfg: expected SynthConfig or Scene3DConfig, got {type(cfg).__name__}")
    return SynthDataset(cfg, length, seed)


def _render_range(cfg: SynthConfig, length: int, seed: int, start: int, stop: int):
    torch.set_num_threads(1)
    ds = _dataset(cfg, length, seed)
    videos, tracks = [], []
    for i in range(start, stop):
        v, t = ds[i]
        videos.append((v.clamp(0, 1) * 255).round().to(torch.uint8))
        tracks.append(t.half())
    return torch.stack(videos), torch.stack(tracks)


def render_pool(cfg: SynthConfig | Scene3DConfig, length: int, seed: int, path: str | Path | None = None,
                progress: bool = False, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Render (or load from `path` if it matches) `length` clips of SynthDataset(cfg, length, seed)
    (Scenes3DDataset for a Scene3DConfig).

    `workers` > 1 renders in that many processes (spawned, so safe after CUDA is initialised); the
    result is identical to a serial render (clip i always uses seed `seed * 1_000_003 + i`).

    Returns:
        video uint8 [N,T,H,W,3], tracks float16 [N,T,H,W,4] (pack_tracks layout).
    """
    _dataset(cfg, 1, seed)  # type check before any work
    key = _key(cfg, length, seed)
    if path is not None and Path(path).is_file():
        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}).get("moaw.synth_pool") == key:
                sd = load_file(str(path))
                return sd["video"], sd["tracks"]
    from tqdm import tqdm
    chunk = max(1, min(64, -(-length // max(4 * workers, 1))))
    bounds = [(a, min(a + chunk, length)) for a in range(0, length, chunk)]
    bar = tqdm(total=length, desc="render synthetic clips", disable=not progress)
    parts = []
    if workers > 1 and len(bounds) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as ex:
            for a, b in bounds:
                parts.append(ex.submit(_render_range, cfg, length, seed, a, b))
            for fut, (a, b) in zip(parts, bounds):
                fut.add_done_callback(lambda _f, n=b - a: bar.update(n))
            parts = [f.result() for f in parts]
    else:
        threads = torch.get_num_threads()
        try:
            for a, b in bounds:
                parts.append(_render_range(cfg, length, seed, a, b))
                bar.update(b - a)
        finally:
            torch.set_num_threads(threads)
    bar.close()
    video, track = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file({"video": video, "tracks": track}, str(path), metadata={"moaw.synth_pool": key})
    return video, track


def item(video: torch.Tensor, tracks: torch.Tensor, index: int) -> tuple[torch.Tensor, DenseTracks]:
    """One clip of a pool: (video float [T,H,W,3] in [0,1], DenseTracks with depth)."""
    return video[index].float() / 255.0, unpack_tracks(tracks[index].float())
