"""The DeT loss graph as an image (what the training node shows and the CLI saves)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw


def loss_graph(losses: list[dict], width: int = 512, height: int = 256) -> torch.Tensor:
    """Total (blue) and diffusion (grey) loss per step, min-max scaled, with the range written in the corner.

    Args: losses: records with "step", "loss", "diffusion" (DeTTrainState.losses). Returns [1, H, W, 3] in [0, 1].
    """
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if losses:
        total = np.array([r["loss"] for r in losses], dtype=np.float64)
        diff = np.array([r.get("diffusion", r["loss"]) for r in losses], dtype=np.float64)
        lo, hi = float(min(total.min(), diff.min())), float(max(total.max(), diff.max()))
        span = hi - lo if hi > lo else 1.0
        pad = 10

        def points(values):
            n = max(len(values) - 1, 1)
            return [(pad + i * (width - 2 * pad) / n, height - pad - (v - lo) / span * (height - 2 * pad))
                    for i, v in enumerate(values)]

        for values, colour in ((diff, (160, 160, 160)), (total, (30, 70, 200))):
            pts = points(values)
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            else:
                draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        draw.text((pad, 2), f"DeT loss, steps {losses[0]['step']}-{losses[-1]['step']}: {lo:.4g} .. {hi:.4g}",
                  fill=(0, 0, 0))
    else:
        draw.text((10, 10), "no training steps run", fill=(0, 0, 0))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
