"""The DeT adapter op alone: the channels-last form used by the hosts (`TemporalConvAdapter.tokens`, Conv2d (K, 1)
on the token layout viewed as [B, C, T, S]) against the textbook form (permute the tokens to [B*S, C, T], Conv1d,
permute back). CPU process time, one thread, median of interleaved repeats; writes bench/results/det_adapter_op.json.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_det_adapter.py
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moaw_core.det.adapter import TemporalConvAdapter  # noqa: E402

CONFIGS = ((256, (8, 8, 8)), (256, (4, 8, 8)), (1536, (4, 8, 8)), (1536, (8, 16, 16)))


def permute_conv1d(m: TemporalConvAdapter, tokens: torch.Tensor, grid) -> torch.Tensor:
    t, h, w = grid
    b, n, c = tokens.shape
    x = tokens.reshape(b, t, h * w, c).permute(0, 2, 3, 1).reshape(b * h * w, c, t)
    y = F.conv1d(F.gelu(F.conv1d(x, m.conv_in.weight, padding=1)), m.conv_out.weight, padding=1)
    return y.reshape(b, h * w, c, t).permute(0, 3, 1, 2).reshape(b, n, c)


def channels_last(m: TemporalConvAdapter, tokens: torch.Tensor, grid) -> torch.Tensor:
    t, h, w = grid
    b, n, c = tokens.shape
    return m.tokens(tokens.reshape(b, t, h * w, c)).reshape(b, n, c)


def main(repeats: int = 15) -> int:
    torch.set_num_threads(1)
    rows = []
    for width, grid in CONFIGS:
        torch.manual_seed(0)
        m = TemporalConvAdapter(width)
        x = torch.randn(1, grid[0] * grid[1] * grid[2], width)
        fns = {"permute_conv1d": permute_conv1d, "channels_last": channels_last}
        times = {k: [] for k in fns}
        with torch.no_grad():
            m.conv_out.weight.normal_(std=0.01)
            err = float((permute_conv1d(m, x, grid) - channels_last(m, x, grid)).abs().max())
            for _ in range(repeats):
                for k, fn in fns.items():
                    t0 = time.process_time()
                    fn(m, x, grid)
                    times[k].append(time.process_time() - t0)
        med = {k: round(statistics.median(v) * 1000, 3) for k, v in times.items()}
        rows.append({"width": width, "token_grid": list(grid), "ms_median": med, "max_abs_diff": err,
                     "channels_last_over_permute": round(med["channels_last"] / med["permute_conv1d"], 3)})
        print(json.dumps(rows[-1]), flush=True)
    out = ROOT / "bench" / "results" / "det_adapter_op.json"
    out.write_text(json.dumps({"device": "cpu", "dtype": "fp32", "torch_threads": 1, "repeats": repeats,
                               "timing": "cpu process time", "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
