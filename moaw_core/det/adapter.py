"""The DeT temporal adapter: one small module per DiT block, applied to the video tokens that enter
self-attention, its output added to the attention's output (so it runs parallel to self-attention).

    tokens [B, T*H*W, C]  ->  grid [B*H*W, C, T]  ->  Conv1d(C, 128, k=3, no bias)  ->  GELU
                          ->  Conv1d(128, C, k=3, no bias, zero init)  ->  back to [B, T*H*W, C]

The same 1-D kernel runs at every spatial position ("shared" in the paper's sense); every block has its own
kernels. The output conv starts at zero, so a fresh adapter leaves the model bit-identical. Padding 1 keeps
the frame count, so an adapter trained on one clip applies to any frame count and size.
Host placement (which module's input/output) lives in `placement.py` (diffusers) and `nodes/det_bridge.py`
(ComfyUI); both call `DeTAdapters.delta`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 128          # the paper's bottleneck width
KERNEL = 3
INIT_STD = 0.02       # "normal init" of the first conv; the std is not published (choice, documented)


class TemporalConvAdapter(nn.Module):
    """Conv1d(C -> hidden, k) -> GELU -> Conv1d(hidden -> C, k, zero init), over the frame axis."""

    def __init__(self, width: int, hidden: int = HIDDEN, kernel: int = KERNEL, init_std: float = INIT_STD):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel: expected an odd size (frames are kept), got {kernel}")
        self.conv_in = nn.Conv1d(width, hidden, kernel, padding=kernel // 2, bias=False)
        self.conv_out = nn.Conv1d(hidden, width, kernel, padding=kernel // 2, bias=False)
        nn.init.normal_(self.conv_in.weight, std=init_std)
        nn.init.zeros_(self.conv_out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, T] -> [N, C, T] (the Conv1d layout; `tokens` is the fast path the hosts use)."""
        return self.tokens(x.permute(2, 0, 1)[None])[0].permute(1, 2, 0)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last form: x [B, T, S, C] (S = spatial positions, the token layout) -> [B, T, S, C].

        Same math as the two Conv1d over T, with no copy of the C-wide tensors: x viewed as [B, C, T, S] is a
        channels-last tensor, so the convs run as Conv2d with a (K, 1) kernel in that memory format (oneDNN / cuDNN
        take it as is) and the output, viewed back, is already in token order (faster than permuting to [B*S, C, T]
        for Conv1d; docs/DET.md). Weights are cast to x's device and dtype per
        call (the host may run the base in bf16/fp16 while the adapter's own parameters stay fp32 for training)."""
        w_in = self.conv_in.weight.to(x.device, x.dtype)[..., None]
        w_out = self.conv_out.weight.to(x.device, x.dtype)[..., None]
        pad = (self.conv_in.padding[0], 0)
        grid = x.permute(0, 3, 1, 2)                                     # [B, C, T, S], channels-last view
        y = F.conv2d(F.gelu(F.conv2d(grid, w_in, padding=pad)), w_out, padding=pad)
        return y.permute(0, 2, 3, 1)


def _key(layer: str) -> str:
    return layer.replace(".", "_")


class DeTAdapters(nn.Module):
    """One `TemporalConvAdapter` per block, keyed by canonical layer name ("block.3").

    Args:
        width: the model's hidden width C. layers: canonical names of the blocks that get an adapter.
        family: model family ("wan", ...), checked when applying. fingerprint: the base model's block
            fingerprint (`moaw_core.engine.adapters`), stored in saved files. hidden, kernel: adapter sizes.
    """

    def __init__(self, width: int, layers, family: str, fingerprint: dict | None = None, hidden: int = HIDDEN,
                 kernel: int = KERNEL, seed: int = 0):
        super().__init__()
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one block name, got none")
        if int(width) < 1:
            raise ValueError(f"width: expected a positive hidden width, got {width}")
        self.width, self.family, self.hidden, self.kernel = int(width), str(family), int(hidden), int(kernel)
        self.layer_names = tuple(layers)
        self.fingerprint = dict(fingerprint or {})
        g = torch.random.fork_rng(devices=[])
        with g:
            torch.manual_seed(int(seed))
            self.blocks = nn.ModuleDict({_key(n): TemporalConvAdapter(width, hidden, kernel) for n in layers})

    def has(self, layer: str) -> bool:
        return layer in self.layer_names

    def module(self, layer: str) -> TemporalConvAdapter:
        if layer not in self.layer_names:
            raise KeyError(f"no DeT adapter for {layer!r}; adapters exist for {list(self.layer_names)}")
        return self.blocks[_key(layer)]

    def delta(self, layer: str, tokens: torch.Tensor, token_grid) -> torch.Tensor:
        """The adapter's output for `tokens` [B, N, C] whose first T*H*W tokens are the video grid (t, h, w);
        trailing tokens (text) get zeros. Returns [B, N, C] in tokens' dtype."""
        t, h, w = (int(v) for v in token_grid)
        n = t * h * w
        if tokens.ndim != 3 or tokens.shape[1] < n or tokens.shape[2] != self.width:
            raise ValueError(f"DeT {layer}: tokens {tuple(tokens.shape)} do not hold a {t}x{h}x{w} video grid of "
                             f"width {self.width} (adapter for width {self.width}, family {self.family!r})")
        b = tokens.shape[0]
        y = self.module(layer).tokens(tokens[:, :n].reshape(b, t, h * w, self.width)).reshape(b, n, self.width)
        if tokens.shape[1] > n:
            y = torch.cat([y, y.new_zeros(b, tokens.shape[1] - n, self.width)], dim=1)
        return y

    def subset(self, layers) -> "DeTAdapters":
        """A new DeTAdapters holding the given layers only (shared parameters)."""
        layers = list(layers)
        missing = [n for n in layers if n not in self.layer_names]
        if missing:
            raise ValueError(f"layers: {missing} have no trained adapter; available: {list(self.layer_names)}")
        out = DeTAdapters(self.width, layers, self.family, self.fingerprint, self.hidden, self.kernel)
        for n in layers:
            out.blocks[_key(n)] = self.blocks[_key(n)]
        return out

    def settings(self) -> dict:
        return {"width": self.width, "family": self.family, "hidden": self.hidden, "kernel": self.kernel,
                "layers": list(self.layer_names)}


def first_fraction(layers, fraction: float = 0.35) -> list[str]:
    """The first `fraction` of `layers` (in forward order), at least one: the paper loads adapters into
    blocks 0-14 of CogVideoX-5B's 42 (~35 %) at inference."""
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction: expected a number in (0, 1], got {fraction}")
    layers = list(layers)
    return layers[:max(1, round(len(layers) * float(fraction)))]
