"""Textures of the synthetic clips: analytic colour functions of frame-0 coordinates (lattice value noise,
stripes, checker, colour blobs) or crops of real frames (`TextureBank`). Because a texture depends only on
frame-0 position, the same seed renders the same scene under any motion (see `moaw_core.data.synth`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

_LATTICE = 64  # value-noise tables are periodic with period 64 lattice cells


class TextureBank:
    """Frames from a folder of videos (.mp4/.avi/.mov/.mkv) or images, loaded once on first use.

    Frames are resized so the short side is `short_side` px; `frames_per_file` are taken evenly
    spaced from each video. Crops of them texture layers when SynthConfig.texture_dir is set.
    """

    VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv")
    IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp")

    def __init__(self, folder: str, frames_per_file: int = 4, short_side: int = 256) -> None:
        self.folder, self.frames_per_file, self.short_side = Path(folder), frames_per_file, short_side
        self._frames: list[torch.Tensor] | None = None

    def frames(self) -> list[torch.Tensor]:
        """Returns the list of [3,h,w] float frames (loads on first call)."""
        if self._frames is None:
            self._frames = self._load()
        return self._frames

    def _load(self) -> list[torch.Tensor]:
        import cv2
        if not self.folder.is_dir():
            raise FileNotFoundError(f"texture_dir: expected a folder of videos/images, got {self.folder}")
        files = sorted(f for f in self.folder.iterdir() if f.suffix.lower() in self.VIDEO_EXT + self.IMAGE_EXT)
        out = []
        for f in files:
            imgs = []
            if f.suffix.lower() in self.IMAGE_EXT:
                imgs = [cv2.imread(str(f), cv2.IMREAD_COLOR)]
            else:
                cap = cv2.VideoCapture(str(f))
                n = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 1)
                for k in range(self.frames_per_file):
                    cap.set(cv2.CAP_PROP_POS_FRAMES, k * n // self.frames_per_file)
                    ok, img = cap.read()
                    imgs.append(img if ok else None)
                cap.release()
            for img in imgs:
                if img is None:
                    continue
                s = self.short_side / min(img.shape[:2])
                img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
                out.append(torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1).float() / 255.0)
        if not out:
            raise FileNotFoundError(f"texture_dir: no readable video or image files in {self.folder}")
        return out


@dataclass
class Texture:
    """An analytic colour function of frame-0 coordinates."""

    kind: str
    table: torch.Tensor          # [P, P, 3] lattice values for value noise
    offsets: torch.Tensor        # [4, 2] per-octave lattice offsets
    colors: torch.Tensor         # [3, 3] palette
    params: tuple[float, ...]    # kind-specific: angle, period/cell, phase, image scale
    image: torch.Tensor | None = None
    image_offset: tuple[float, float] = (0.0, 0.0)


def _value_noise(tex: Texture, p: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Multi-octave smooth value noise in [0,1]^3 at p [N,2] (periodic lattice tables)."""
    P = tex.table.shape[0]
    # Wrap-pad the table by one cell, so bilinear sampling at (i mod P) + smoothstep(frac) equals
    # smoothstep interpolation between the 4 surrounding lattice values (C1 across cells).
    table = torch.cat([tex.table, tex.table[:1]], 0)
    table = torch.cat([table, table[:, :1]], 1).permute(2, 0, 1)[None]
    out = 0.0
    for k, s in enumerate(scales):
        u = p / s + tex.offsets[k]
        i0 = torch.floor(u)
        f = u - i0
        u = torch.remainder(i0, P) + f * f * (3 - 2 * f)
        grid = (u * (2.0 / P) - 1.0)[None, None]
        out = out + F.grid_sample(table, grid, mode="bilinear", align_corners=True)[0, :, 0].T / len(scales)
    return torch.clamp((out - 0.5) * 2.2 + 0.5, 0.0, 1.0)


def sample_texture(tex: Texture, p: torch.Tensor) -> torch.Tensor:
    """Colour [N,3] of texture at frame-0 coordinates p [N,2]."""
    angle, period, phase, _ = tex.params
    c, s = math.cos(angle), math.sin(angle)
    u, v = p[:, 0] * c + p[:, 1] * s, -p[:, 0] * s + p[:, 1] * c
    c0, c1 = tex.colors[0], tex.colors[1]
    if tex.kind == "noise":
        base = _value_noise(tex, p, (period, period * 2, period * 4))
    elif tex.kind == "stripes":
        w = 0.5 + 0.5 * torch.sin(2 * math.pi * u / period + phase)
        base = c0 + (c1 - c0) * w[:, None]
    elif tex.kind == "checker":
        w = 0.5 + 0.5 * torch.tanh(3 * torch.sin(math.pi * u / period) * torch.sin(math.pi * v / period + phase))
        base = c0 + (c1 - c0) * w[:, None]
    elif tex.kind == "blobs":
        w = torch.softmax(8.0 * _value_noise(tex, p, (period * 2,)), dim=-1)
        base = w @ tex.colors
    else:  # image crop, reflected outside the source frame
        img = tex.image
        h, w_ = img.shape[1:]
        q = p * tex.params[3] + torch.tensor(tex.image_offset)
        grid = torch.stack([q[:, 0] / (w_ - 1) * 2 - 1, q[:, 1] / (h - 1) * 2 - 1], -1)
        base = F.grid_sample(img[None], grid[None, None].float(), mode="bilinear", padding_mode="reflection",
                             align_corners=True)[0, :, 0].T
        return torch.clamp(0.9 * base + 0.1 * _value_noise(tex, p, (3.0,)), 0.0, 1.0)
    return torch.clamp(0.8 * base + 0.2 * _value_noise(tex, p, (3.0, 5.0)), 0.0, 1.0)


def random_texture(g: torch.Generator, bank: TextureBank | None, real_prob: float) -> Texture:
    def U(a=0.0, b=1.0):
        return a + (b - a) * float(torch.rand((), generator=g))
    table = torch.rand(_LATTICE, _LATTICE, 3, generator=g)
    offsets = torch.rand(4, 2, generator=g) * _LATTICE
    colors = torch.rand(3, 3, generator=g)
    kind = ("noise", "stripes", "checker", "blobs")[int(torch.randint(4, (), generator=g))]
    params = (U(0, math.pi), U(4.0, 10.0), U(0, 2 * math.pi), U(0.5, 1.5))
    use_real, pick = U() < real_prob, U()
    ox, oy = U(), U()
    if bank is None or not use_real:
        return Texture(kind, table, offsets, colors, params)
    frames = bank.frames()
    img = frames[min(int(pick * len(frames)), len(frames) - 1)]
    offset = (ox * (img.shape[2] - 1), oy * (img.shape[1] - 1))
    return Texture("image", table, offsets, colors, params, img, offset)
