"""A rendered-once cache of synthetic clips (`moaw_core.synth.SynthDataset`) in one safetensors file.

Rendering costs ~0.4 s per 8x64x64 clip on one CPU core, more than a tiny-model training step, so
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

from moaw_core.synth import SynthConfig, SynthDataset
from moaw_core.tracks import DenseTracks, unpack_tracks


def _key(cfg: SynthConfig, length: int, seed: int) -> str:
    return json.dumps({"cfg": dataclasses.asdict(cfg), "length": length, "seed": seed}, sort_keys=True)


def render_pool(cfg: SynthConfig, length: int, seed: int, path: str | Path | None = None,
                progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Render (or load from `path` if it matches) `length` clips of SynthDataset(cfg, length, seed).

    Returns:
        video uint8 [N,T,H,W,3], tracks float16 [N,T,H,W,4] (pack_tracks layout).
    """
    key = _key(cfg, length, seed)
    if path is not None and Path(path).is_file():
        with safe_open(str(path), "pt") as f:
            if (f.metadata() or {}).get("moaw.synth_pool") == key:
                sd = load_file(str(path))
                return sd["video"], sd["tracks"]
    ds = SynthDataset(cfg, length, seed)
    items = range(length)
    if progress:
        from tqdm import tqdm
        items = tqdm(items, desc="render synthetic clips")
    videos, tracks = [], []
    for i in items:
        v, t = ds[i]
        videos.append((v.clamp(0, 1) * 255).round().to(torch.uint8))
        tracks.append(t.half())
    video, track = torch.stack(videos), torch.stack(tracks)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file({"video": video, "tracks": track}, str(path), metadata={"moaw.synth_pool": key})
    return video, track


def item(video: torch.Tensor, tracks: torch.Tensor, index: int) -> tuple[torch.Tensor, DenseTracks]:
    """One clip of a pool: (video float [T,H,W,3] in [0,1], DenseTracks with depth)."""
    return video[index].float() / 255.0, unpack_tracks(tracks[index].float())
