"""MOFT math on token grids: content removal, motion channels, region masks and the reference [frames x channels].

Pure tensor functions (no host code). A token grid is a block's hidden state as `[B, T, H, W, C]` (see
`moaw_core.engine.adapters`). MOFT (Xiao et al., NeurIPS 2024) is the content-removed feature (the mean over
frames subtracted per position and channel) at a few motion channels; a clip's MOFT series is its spatial mean
inside a region mask, per frame: `[T, K]`.

Channel selection, two recipes:
- `pca_channels`: the official one. PCA over the content-removed per-frame spatial means of clips with opposite
  motions (left vs right pans); keep the channels with the largest |loading| on PC1.
- `svd_channels`: the DiT port's. The top channels by |first right-singular vector| of the reference itself.

Pooling of the content-removed features over space (`POOLINGS`):
- "mean": the official spatial mean inside the mask, `[T, K]`.
- "signed": the spatial mean of the content-removed feature times the sign of the content's own spatial gradient
  (central differences of the mean over frames), along x then along y: `[T, 2K]`. A translation moves every
  feature edge the same way, so this pooling reads the direction of motion whatever the content; the plain mean
  of a translating texture is ~0 at every frame. Measured on the bundled tiny generators (docs/MOFT.md): with
  "mean" no block and no sigma separates held-out left / right pans (a linear readout of all channels stays near
  chance); with "signed" every block does at sigma <= 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from moaw_core.engine.inject import remove_content

LOSSES = ("mse", "cosine")
POOLINGS = ("mean", "signed")
# Noise of the single source pass. "frame": one noise frame shared by every frame, so identical frames get
# identical inputs (what DDIM inversion, the official feature source, gives a static video: its MOFT is ~0);
# "independent": fresh noise per frame (a static video then shows noise-driven change over frames).
NOISE_MODES = ("frame", "independent")


def check_noise_mode(noise: str) -> None:
    if noise not in NOISE_MODES:
        raise ValueError(f"noise: expected one of {NOISE_MODES}, got {noise!r}")


def check_grid(grid: torch.Tensor, what: str = "grid") -> None:
    if not isinstance(grid, torch.Tensor) or grid.ndim != 5:
        raise ValueError(f"{what}: expected a token grid [B, T, H, W, C], got {getattr(grid, 'shape', type(grid))}")
    if grid.shape[1] < 2:
        raise ValueError(f"{what}: MOFT needs at least 2 frames (content removal subtracts the mean over frames), "
                         f"got T = {grid.shape[1]}")


def region_mask(mask: torch.Tensor | None, grid, what: str = "mask") -> torch.Tensor | None:
    """A user mask resized to a (T, H, W) grid: `[T, H, W]` float in [0, 1] (None stays None).

    Args:
        mask: `[H, W]`, `[1, H, W]` or `[T', H, W]`, any resolution with the grid's aspect ratio (pixels or
            latents); T' frames are mapped to the grid's frames by nearest index.
        grid: target (T, H, W).
    Raises ValueError for another aspect ratio, a non-finite or all-zero mask."""
    if mask is None:
        return None
    t, h, w = (int(g) for g in grid)
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise ValueError(f"{what}: expected [H, W] or [T, H, W], got {getattr(mask, 'shape', type(mask))}")
    m = mask.detach().float().cpu()
    m = m[None] if m.ndim == 2 else m
    mh, mw = m.shape[-2:]
    if mh * w != mw * h or mh < h:
        raise ValueError(f"{what}: size {mh}x{mw} does not fit the {h}x{w} latent grid (expected the same aspect "
                         f"ratio at latent or pixel resolution, e.g. {h}x{w} or {h * 8}x{w * 8})")
    if not torch.isfinite(m).all() or float(m.max()) <= 0:
        raise ValueError(f"{what}: must be finite with at least one non-zero value")
    idx = torch.linspace(0, m.shape[0] - 1, t).round().long()
    m = F.interpolate(m[idx][None], size=(h, w), mode="area")[0]
    return m.clamp(0, 1)


def check_pooling(pooling: str) -> int:
    """Raise unless `pooling` is one of POOLINGS; returns the series' features per channel (1 or 2)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling: expected one of {POOLINGS}, got {pooling!r}")
    return 2 if pooling == "signed" else 1


def gradient_signs(content: torch.Tensor) -> torch.Tensor:
    """`[B, 1, H, W, C, 2]` signs of the central x / y differences of `content` `[B, 1, H, W, C]` (0 at the borders)."""
    gx, gy = torch.zeros_like(content), torch.zeros_like(content)
    gx[:, :, :, 1:-1] = content[:, :, :, 2:] - content[:, :, :, :-2]
    gy[:, :, 1:-1] = content[:, :, 2:] - content[:, :, :-2]
    return torch.stack([gx, gy], -1).sign()


def moft_series(grid: torch.Tensor, channels, mask: torch.Tensor | None = None, pooling: str = "mean") -> torch.Tensor:
    """The MOFT series of a token grid: content removed, `channels` kept, pooled inside `mask` per frame.

    Args:
        grid: `[B, T, H, W, C]`. channels: K channel indices. mask: `[T, H, W]` on the same grid or None.
        pooling: "mean" (official: spatial mean) or "signed" (module docstring; the gradient signs are detached).
    Returns:
        `[B, T, K]` ("mean") or `[B, T, 2K]` ("signed": x part then y part); float32 unless the grid is float64;
        differentiable."""
    check_grid(grid)
    parts = check_pooling(pooling)
    idx = torch.as_tensor(list(channels), dtype=torch.long, device=grid.device)
    f = grid.index_select(-1, idx).float()
    g = remove_content(f)
    if parts == 2:
        s = gradient_signs(f.mean(dim=1, keepdim=True).detach())
        g = torch.cat([g * s[..., 0], g * s[..., 1]], dim=-1)
    if mask is None:
        return g.mean(dim=(2, 3))
    wgt = mask.to(g.device, g.dtype)[None, ..., None]
    return (g * wgt).sum(dim=(2, 3)) / wgt.sum(dim=(2, 3)).clamp_min(1e-8)


def svd_channels(grid: torch.Tensor, fraction: float = 0.04, mask: torch.Tensor | None = None) -> list[int]:
    """DiT-port selection: the top `fraction` of channels by |first right-singular vector| of the
    content-removed features (positions inside `mask` only). grid `[1, T, H, W, C]`. Returns sorted indices."""
    check_grid(grid)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction: expected in (0, 1], got {fraction}")
    x = remove_content(grid[0].float())
    if mask is not None:
        x = x[mask.to(x.device) > 0]
    x = x.reshape(-1, x.shape[-1])
    v = torch.linalg.svd(x, full_matrices=False)[2][0]
    k = max(1, round(fraction * x.shape[-1]))
    return sorted(torch.topk(v.abs(), k).indices.tolist())


def pca_channels(series: torch.Tensor, k: int, parts: int = 1) -> tuple[list[int], torch.Tensor]:
    """Official selection: PC1 of content-removed per-frame features of opposite-motion clips.

    Args:
        series: `[N, T, P*C]` pooled content-removed features of N clips (both motions), P = `parts` features per
            channel laid out part by part (`moft_series`: "signed" gives the x part of every channel, then the y part).
        k: channels to keep (ranked by the norm of their P loadings).
    Returns:
        (sorted channel indices, PC1 loadings `[P*C]`)."""
    if series.ndim != 3 or series.shape[0] < 2:
        raise ValueError(f"series: expected [N >= 2, T, C], got {tuple(series.shape)}")
    if parts < 1 or series.shape[-1] % parts:
        raise ValueError(f"series: {series.shape[-1]} features do not split into {parts} parts per channel")
    n_ch = series.shape[-1] // parts
    if not 0 < k <= n_ch:
        raise ValueError(f"k: expected 1..{n_ch} channels, got {k}")
    x = series.reshape(-1, series.shape[-1]).double()
    x = x - x.mean(dim=0, keepdim=True)
    pc1 = torch.linalg.svd(x, full_matrices=False)[2][0]
    score = pc1.reshape(parts, n_ch).norm(dim=0)
    return sorted(torch.topk(score, k).indices.tolist()), pc1.float()


def part_indices(channels, n_channels: int, parts: int) -> list[int]:
    """Positions in a `[P*C]` feature vector of `channels`, part by part (the layout of `moft_series`)."""
    return [p * n_channels + c for p in range(parts) for c in channels]


def moft_loss(gen: torch.Tensor, ref: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Loss between generated `[B, T, K]` and reference `[T, K]` MOFT: "mse" or "cosine" (1 - cos per frame)."""
    ref = ref.to(gen.device, gen.dtype).expand_as(gen)
    if kind == "mse":
        return F.mse_loss(gen, ref)
    if kind == "cosine":
        return (1 - F.cosine_similarity(gen, ref, dim=-1, eps=1e-8)).mean()
    raise ValueError(f"loss: expected one of {LOSSES}, got {kind!r}")


@dataclass
class MoftReference:
    """The reference MOFT of a source video.

    values: `[T, K]` float32 (T token frames, K channels; `[T, 2K]` with "signed" pooling). channels: the K channel
    indices. layer: canonical block name ("block.3"). sigma: the noise level of the source pass.
    fingerprint: structure of the model that produced it (`Adapter.fingerprint`). token_grid: (T, H, W) of the
    block's tokens. source: free text. pooling: how the features were pooled over space (`POOLINGS`); the
    generation is pooled the same way.
    """

    values: torch.Tensor
    channels: tuple[int, ...]
    layer: str
    sigma: float
    fingerprint: dict
    token_grid: tuple[int, int, int]
    source: str = ""
    extra: dict = field(default_factory=dict)
    pooling: str = "mean"

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        self.token_grid = tuple(int(g) for g in self.token_grid)
        width = check_pooling(self.pooling) * len(self.channels)
        if self.values.ndim != 2 or self.values.shape != (self.token_grid[0], width):
            raise ValueError(f"MoftReference.values: expected [T={self.token_grid[0]}, {width}] ({len(self.channels)} "
                             f"channels, {self.pooling} pooling), got {tuple(self.values.shape)}")
        if not torch.isfinite(self.values).all():
            raise ValueError("MoftReference.values: not finite")

    def __deepcopy__(self, memo):  # immutable once built; ComfyUI clones must not copy it
        return self

    def describe(self) -> str:
        return (f"MOFT reference: {self.layer} at sigma {self.sigma:.3g}, {len(self.channels)} channels x "
                f"{self.token_grid[0]} frames ({self.extra.get('channel_method', '?')}, {self.pooling} pooling)")


def build_reference(grid: torch.Tensor, layer: str, sigma: float, fingerprint: dict, channels=None,
                    fraction: float = 0.04, mask: torch.Tensor | None = None, source: str = "",
                    pooling: str = "mean") -> MoftReference:
    """The reference from one captured token grid.

    Args:
        grid: `[1, T, H, W, C]` features of the source at `layer`. channels: channel indices (e.g. from
            `MoftChannels`), or None for the DiT port's own-SVD selection (`fraction` of C).
        mask: source region (`region_mask` input: any resolution with the latent's aspect ratio) or None.
        pooling: "mean" or "signed" (`moft_series`; use the pooling the channels were selected with).
    Returns MoftReference."""
    check_pooling(pooling)
    check_grid(grid, "reference features")
    if grid.shape[0] != 1:
        raise ValueError(f"reference features: expected batch 1 (the source), got {grid.shape[0]}")
    t, h, w, c = grid.shape[1:]
    m = region_mask(mask, (t, h, w), "reference mask")
    method = "given"
    if channels is None:
        channels, method = svd_channels(grid, fraction, m), f"svd top {fraction:.0%}"
    channels = [int(i) for i in channels]
    if not channels or min(channels) < 0 or max(channels) >= c:
        raise ValueError(f"channels: expected indices in [0, {c}) (the block width), got "
                         f"{channels[:8]}{'...' if len(channels) > 8 else ''}")
    values = moft_series(grid, channels, m, pooling)[0].detach().cpu()
    return MoftReference(values, tuple(channels), layer, float(sigma), dict(fingerprint), (t, h, w), source,
                         {"channel_method": method, "masked": m is not None}, pooling)
