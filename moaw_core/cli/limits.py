"""Up-front checks shared by the CLI verbs: counts that must be positive, and whether a run's big allocations
fit in the memory free on its device (estimated before anything is loaded, so a typo such as
`--frames 100001` is refused in a second instead of swapping for minutes)."""
from __future__ import annotations

import math
import os

import torch

# Peak activation bytes of one transformer block pass per token and model width (fp32), measured with the bundled
# tiny tracker: 8 frames at 64x64 vs 256x256 differ by ~177 MB for 7,680 more tokens of width 256 (factor ~22).
ACTIVATION_FACTOR = 24


def require_ints(minimum: int = 1, **values) -> None:
    """ValueError naming the first argument that is not an integer >= `minimum` (None is allowed: a default)."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name.replace('_', '-')}: expected an integer >= {minimum}, got {value!r}")


def require_finite(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name.replace('_', '-')}: expected a finite number, got {value!r}")


def available_bytes(device: str | torch.device = "cpu") -> int:
    """Memory free now on `device` (CUDA: free device memory; CPU: MemAvailable, else physical pages)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 ** 62  # unknown: do not refuse


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def check_fits(need: float, device, what: str, hint: str) -> None:
    """ValueError when the estimated `need` bytes exceed the memory free on `device` (leaving 10 % spare)."""
    free = available_bytes(device)
    if need > 0.9 * free:
        raise ValueError(f"{what} needs about {fmt_bytes(need)} of memory, {fmt_bytes(free)} is free on "
                         f"{torch.device(device).type}; {hint}")


def video_bytes(frames: int, height: int, width: int, copies: int = 1) -> int:
    """fp32 [T, H, W, 3] videos."""
    return int(frames) * int(height) * int(width) * 3 * 4 * copies


def activation_bytes(tokens: int, width: int, dtype_bytes: int = 4) -> int:
    return int(tokens) * int(width) * dtype_bytes * ACTIVATION_FACTOR
