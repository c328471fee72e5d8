"""Heat map of a `LayerScores` table: layer x step, one panel per score (matplotlib when importable, else
OpenCV drawing, so runtime code never hard-requires matplotlib).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from moaw_core.selection.scoring import SCORES, rank_key

if TYPE_CHECKING:
    from moaw_core.selection.layer_selection import LayerScores

_LABELS = {"fisher": "Fisher ratio, log10(1 + F)", "silhouette": "silhouette", "probe": "linear-probe accuracy"}


def _best_cell(scores: LayerScores, score: str) -> tuple[int, int]:
    """(row, column) of the first row when ranking by `score` (ties broken as in the table)."""
    r = min(scores.rows, key=rank_key(score))
    return scores.layers.index(r["layer"]), scores.steps.index(int(r["step"]))


def _panel_values(scores: LayerScores, score: str) -> tuple[np.ndarray, float, float]:
    """Display values [L, S] and colour range; Fisher on a log scale with inf drawn as the top colour."""
    v = scores.grid(score)
    if score == "fisher":
        finite = v[np.isfinite(v)]
        top = np.log10(1 + finite.max()) * 1.1 if finite.size else 1.0
        v = np.where(np.isposinf(v), top, np.log10(1 + np.where(np.isfinite(v), np.clip(v, 0, None), 0)))
        return v, 0.0, max(top, 1e-6)
    return v, (-1.0 if score == "silhouette" else 0.0), 1.0


def _heatmap_matplotlib(scores: LayerScores) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    L, S = len(scores.layers), len(scores.steps)
    fig = Figure(figsize=(3 * (1.6 + 0.5 * S), 1.4 + 0.28 * L), dpi=100)
    FigureCanvasAgg(fig)
    for j, score in enumerate(SCORES):
        ax = fig.add_subplot(1, 3, j + 1)
        v, lo, hi = _panel_values(scores, score)
        im = ax.imshow(v, cmap="viridis", vmin=lo, vmax=hi, aspect="auto", interpolation="nearest")
        r, c = _best_cell(scores, score)
        ax.add_patch(Rectangle((c - .5, r - .5), 1, 1, fill=False, edgecolor="red", linewidth=2))
        ax.set_yticks(range(L), scores.layers if j == 0 else [""] * L, fontsize=7)
        ax.set_xticks(range(S), [f"{s}\n{scores.sigmas[k]:.2f}" if scores.sigmas else str(s)
                                 for k, s in enumerate(scores.steps)], fontsize=7)
        ax.set_xlabel("step / sigma", fontsize=8)
        ax.set_title(_LABELS[score], fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.08)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _heatmap_cv2(scores: LayerScores) -> np.ndarray:
    import cv2

    L, S, ch, cw = len(scores.layers), len(scores.steps), 18, 44
    font = cv2.FONT_HERSHEY_SIMPLEX
    left = 8 + max(cv2.getTextSize(n, font, 0.4, 1)[0][0] for n in scores.layers)
    panels = []
    for score in SCORES:
        v, lo, hi = _panel_values(scores, score)
        img = np.full((30 + L * ch + 24, left + S * cw + 8, 3), 255, np.uint8)
        cv2.putText(img, _LABELS[score], (4, 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        u8 = np.clip(np.nan_to_num((v - lo) / (hi - lo), nan=0.0) * 255, 0, 255).astype(np.uint8)
        colours = cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[..., ::-1]
        best = _best_cell(scores, score)
        for r in range(L):
            cv2.putText(img, scores.layers[r], (4, 30 + r * ch + 13), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            for c in range(S):
                x, y0 = left + c * cw, 30 + r * ch
                img[y0:y0 + ch, x:x + cw] = colours[r, c]
                raw = scores.grid(score)[r, c]
                txt = "inf" if np.isposinf(raw) else f"{raw:.2f}"
                ink = (0, 0, 0) if u8[r, c] > 140 else (255, 255, 255)
                cv2.putText(img, txt, (x + 3, y0 + 13), font, 0.35, ink, 1, cv2.LINE_AA)
                if (r, c) == best:
                    cv2.rectangle(img, (x, y0), (x + cw - 1, y0 + ch - 1), (255, 0, 0), 2)
        for c, s in enumerate(scores.steps):
            cv2.putText(img, str(s), (left + c * cw + cw // 3, 30 + L * ch + 16), font, 0.4, (0, 0, 0), 1)
        panels.append(img)
    return np.concatenate(panels, 1)


def render_heatmap(scores: LayerScores, backend: str = "auto") -> np.ndarray:
    """[H, W, 3] uint8 RGB. backend: "auto" (matplotlib when importable, else cv2), "matplotlib", "cv2"."""
    if backend not in ("auto", "matplotlib", "cv2"):
        raise ValueError(f"backend: expected 'auto', 'matplotlib' or 'cv2', got {backend!r}")
    if backend != "cv2":
        try:
            return _heatmap_matplotlib(scores)
        except ImportError:
            if backend == "matplotlib":
                raise
    return _heatmap_cv2(scores)
