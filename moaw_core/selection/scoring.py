"""Layer-selection scores (Moaw stage 2): how cleanly pooled block features separate motion classes.

Inputs are features X [N, D] (one row per clip, already pooled with :func:`pool_features`) and
integer class labels y [N]. Scores: Fisher trace ratio and silhouette on the top PCA components,
and the k-fold accuracy of a linear (ridge-classifier) probe. :func:`score_table` ranks
(layer, step) pairs and :func:`top_k` picks the layers to inject. Scores are pure numpy float64
(small dense linear algebra: far faster than torch's threaded CPU kernels at this size);
pooling uses torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCORES = ("fisher", "silhouette", "probe")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def _xy(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate features and labels -> (X float64 [N, D], class index [N] in 0..C-1)."""
    Xn, yn = _np(X), _np(y)
    if Xn.ndim != 2:
        raise ValueError(f"X: expected [N, D] features, got shape {tuple(Xn.shape)}")
    if yn.ndim != 1:
        raise ValueError(f"y: expected [N] integer labels, got shape {tuple(yn.shape)}")
    if Xn.shape[0] != yn.shape[0]:
        raise ValueError(f"y: expected {Xn.shape[0]} labels (one per row of X), got {yn.shape[0]}")
    if not (np.issubdtype(yn.dtype, np.integer) or np.issubdtype(yn.dtype, np.bool_)):
        if not (np.issubdtype(yn.dtype, np.floating) and np.array_equal(yn, np.round(yn))):
            raise ValueError(f"y: expected integer labels, got non-integer values of dtype {yn.dtype}")
    Xn = Xn.astype(np.float64)
    if not np.isfinite(Xn).all():
        raise ValueError("X: contains NaN or inf")
    classes, yi = np.unique(yn.astype(np.int64), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"y: expected at least 2 classes, got {len(classes)}")
    return Xn, yi.reshape(-1)


def _pca(X: np.ndarray, n_components: int) -> np.ndarray:
    """Centre X [N, D] and project on its top principal components -> [N, k]."""
    if int(n_components) < 1:
        raise ValueError(f"n_components: expected >= 1, got {n_components}")
    Xc = X - X.mean(0, keepdims=True)
    k = min(int(n_components), X.shape[0], X.shape[1])
    if X.shape[0] <= X.shape[1]:  # Gram trick: eigh of [N, N]; X V = U S
        evals, evecs = np.linalg.eigh(Xc @ Xc.T)
        idx = np.argsort(evals)[::-1][:k]
        return evecs[:, idx] * np.sqrt(np.clip(evals[idx], 0, None))
    evals, evecs = np.linalg.eigh(Xc.T @ Xc)
    idx = np.argsort(evals)[::-1][:k]
    return Xc @ evecs[:, idx]


def fisher_ratio(X, y, n_components: int = 8) -> float:
    """Fisher criterion tr(S_b) / tr(S_w) on the top ``n_components`` PCA components.

    S_b = sum_c n_c (mu_c - mu)(mu_c - mu)^T, S_w = sum_c sum_{i in c} (x_i - mu_c)(x_i - mu_c)^T.
    Args:
        X: [N, D] features. y: [N] integer labels (>= 2 classes). n_components: PCA components kept.
    Returns:
        The ratio (>= 0; inf when classes are perfectly tight but apart, 0 when all rows are equal).
    """
    Xn, yi = _xy(X, y)
    Z = _pca(Xn, n_components)
    mu = Z.mean(0)
    tb = tw = 0.0
    for c in range(int(yi.max()) + 1):
        Zc = Z[yi == c]
        mc = Zc.mean(0)
        tb += float(len(Zc) * ((mc - mu) ** 2).sum())
        tw += float(((Zc - mc) ** 2).sum())
    if tw <= 1e-12 * (tb + tw):
        return math.inf if tb > 0 else 0.0
    return tb / tw


def silhouette(X, y, n_components: int = 8) -> float:
    """Mean silhouette coefficient (Euclidean) of the labels on the top PCA components.

    s_i = (b_i - a_i) / max(a_i, b_i), a_i the mean distance to the other members of i's class,
    b_i the smallest mean distance to another class; s_i = 0 for a class of one (as scikit-learn).
    Args:
        X: [N, D] features. y: [N] integer labels (>= 2 classes). n_components: PCA components kept.
    Returns:
        Mean s_i in [-1, 1].
    """
    Xn, yi = _xy(X, y)
    Z = _pca(Xn, n_components)
    n_cls = int(yi.max()) + 1
    onehot = np.eye(n_cls)[yi]  # [N, C]
    sums = np.concatenate([np.sqrt(((Z[i:i + 256, None] - Z[None]) ** 2).sum(-1)) @ onehot
                           for i in range(0, len(Z), 256)])  # [N, C] summed distance to each class
    counts = onehot.sum(0)
    own = counts[yi] - 1
    rows = np.arange(len(yi))
    a = sums[rows, yi] / np.maximum(own, 1)
    mean_other = sums / counts
    mean_other[rows, yi] = np.inf
    b = mean_other.min(1)
    denom = np.maximum(a, b)
    s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(np.where(own > 0, s, 0.0).mean())


def stratified_folds(y, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Deterministic stratified split: each class's shuffled indices are dealt round-robin.

    Args:
        y: [N] labels. folds: number of folds (2 <= folds <= N). seed: shuffle seed.
    Returns:
        ``folds`` arrays of test indices, disjoint and covering 0..N-1.
    """
    yn = _np(y)
    if int(folds) < 2 or int(folds) > len(yn):
        raise ValueError(f"folds: expected 2 <= folds <= number of samples ({len(yn)}), got {folds}")
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(int(folds))]
    offset = 0
    for c in np.unique(yn):
        idx = rng.permutation(np.nonzero(yn == c)[0])
        for k, i in enumerate(idx):
            out[(k + offset) % folds].append(int(i))
        offset += len(idx)
    return [np.sort(np.array(f, dtype=np.int64)) for f in out]


def grouped_folds(y, groups, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Folds that keep every group (e.g. a scene rendered under each motion class) in one fold, so the probe
    is tested on groups it never saw: otherwise it can recognise the scene instead of the motion.

    Args:
        y: [N] labels (only for the length). groups: [N] group ids. folds: 2 <= folds <= number of groups.
    Returns:
        ``folds`` arrays of test indices, disjoint and covering 0..N-1.
    """
    gn = _np(groups)
    if len(gn) != len(_np(y)):
        raise ValueError(f"groups: expected one per sample ({len(_np(y))}), got {len(gn)}")
    uniq = np.unique(gn)
    if int(folds) < 2 or int(folds) > len(uniq):
        raise ValueError(f"folds: expected 2 <= folds <= number of groups ({len(uniq)}), got {folds}")
    order = np.random.default_rng(seed).permutation(uniq)
    fold_of = {g: k % int(folds) for k, g in enumerate(order)}
    return [np.sort(np.nonzero([fold_of[g] == f for g in gn])[0]).astype(np.int64) for f in range(int(folds))]


def _ridge_predict(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, n_cls: int,
                   alpha: float) -> np.ndarray:
    """Ridge classifier (targets +-1 per class, intercept by centring, as scikit-learn's
    RidgeClassifier) solved in closed form; the dual form when there are more features than rows."""
    Y = -np.ones((len(ytr), n_cls))
    Y[np.arange(len(ytr)), ytr] = 1.0
    xm, ym = Xtr.mean(0), Y.mean(0)
    Xc, Yc = Xtr - xm, Y - ym
    n, d = Xc.shape
    if n <= d:
        W = Xc.T @ np.linalg.solve(Xc @ Xc.T + alpha * np.eye(n), Yc)
    else:
        W = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(d), Xc.T @ Yc)
    return ((Xte - xm) @ W + ym).argmax(1)


def linear_probe_accuracy(X, y, folds: int = 5, seed: int = 0, alpha: float = 1.0, groups=None) -> float:
    """Stratified k-fold accuracy of a standardised linear (ridge-classifier) probe.

    Each fold standardises with its training mean/std (constant features keep scale 1), fits a
    ridge classifier in closed form (no iterations, so exactly reproducible) and scores the held-out
    rows. Equivalent to scikit-learn's StandardScaler + RidgeClassifier(alpha) on the same folds.
    Args:
        X: [N, D] features. y: [N] integer labels. folds: k (2 <= k <= N). seed: fold shuffle seed.
        alpha: L2 strength (> 0). groups: optional [N] group ids; folds then keep each group together
            (`grouped_folds`), so a scene seen under other classes in training cannot give the answer away.
    Returns:
        Mean held-out accuracy over the folds, in [0, 1].
    """
    Xn, yi = _xy(X, y)
    if groups is None and (int(folds) > len(yi) or int(folds) < 2):
        raise ValueError(f"folds: expected 2 <= folds <= number of samples ({len(yi)}), got {folds}")
    if not alpha > 0:
        raise ValueError(f"alpha: expected > 0, got {alpha}")
    n_cls = int(yi.max()) + 1
    accs = []
    splits = stratified_folds(yi, folds, seed) if groups is None else grouped_folds(yi, groups, folds, seed)
    for test in splits:
        mask = np.ones(len(yi), dtype=bool)
        mask[test] = False
        Xtr = Xn[mask]
        mu, sd = Xtr.mean(0), Xtr.std(0)
        sd = np.where(sd > 1e-12, sd, 1.0)
        pred = _ridge_predict((Xtr - mu) / sd, yi[mask], (Xn[~mask] - mu) / sd, n_cls, float(alpha))
        accs.append(float((pred == yi[~mask]).mean()))
    return float(np.mean(accs))


def pool_features(h, mode: str = "mean", remove_content: bool = False, grid: int = 1):
    """Pool block features over space, keeping time, and flatten to one row per clip.

    Args:
        h: [T, H, W, C] or [B, T, H, W, C] (torch or numpy).
        mode: "mean" (average over space) or "rms" (root-mean-square over space, sign-free energy).
        remove_content: MOFT content removal, subtract each position's mean over frames first. With
            mode "mean" this equals removing the temporal mean of the pooled sequence.
        grid: pool to a grid x grid layout instead of one cell (keeps coarse spatial layout).
    Returns:
        [T*grid*grid*C] or [B, T*grid*grid*C] float32, order (t, gy, gx, c); same library as ``h``.
    """
    is_np = not torch.is_tensor(h)
    t = torch.as_tensor(np.asarray(h)) if is_np else h.detach()
    if t.ndim not in (4, 5):
        raise ValueError(f"h: expected [T, H, W, C] or [B, T, H, W, C], got shape {tuple(t.shape)}")
    if mode not in ("mean", "rms"):
        raise ValueError(f"mode: expected 'mean' or 'rms', got {mode!r}")
    if int(grid) < 1:
        raise ValueError(f"grid: expected >= 1, got {grid}")
    x = t.float() if t.ndim == 5 else t.float()[None]
    if remove_content:
        x = x - x.mean(1, keepdim=True)
    B, T, H, W, C = x.shape
    x = x.permute(0, 1, 4, 2, 3).reshape(B * T, C, H, W)
    if mode == "rms":
        x = F.adaptive_avg_pool2d(x * x, grid).clamp_min(0).sqrt()
    else:
        x = F.adaptive_avg_pool2d(x, grid)
    out = x.reshape(B, T, C, grid, grid).permute(0, 1, 3, 4, 2).reshape(B, -1)
    out = out if t.ndim == 5 else out[0]
    return out.numpy() if is_np else out


def score_table(features: dict, y, n_components: int = 8, folds: int = 5, seed: int = 0,
                by: str = "probe", groups=None) -> list[dict]:
    """Score every (layer, step) feature set and rank them.

    Args:
        features: {(layer: str, step: int): X [N, D]}, rows in the same clip order as y.
        y: [N] integer labels. n_components, folds, seed: as in the score functions.
        by: primary sort key (fisher | silhouette | probe); ties broken by the other two.
        groups: optional [N] group ids for the probe's folds (see `linear_probe_accuracy`).
    Returns:
        Rows dict(layer, step, fisher, silhouette, probe), best first.
    """
    if by not in SCORES:
        raise ValueError(f"by: expected one of {SCORES}, got {by!r}")
    if not features:
        raise ValueError("features: expected a non-empty {(layer, step): X} dict")
    rows = []
    for key, X in features.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"features: expected (layer, step) keys, got {key!r}")
        rows.append({"layer": str(key[0]), "step": key[1],
                     "fisher": fisher_ratio(X, y, n_components),
                     "silhouette": silhouette(X, y, n_components),
                     "probe": linear_probe_accuracy(X, y, folds, seed, groups=groups)})
    rows.sort(key=rank_key(by))
    return rows


def rank_key(by: str):
    """Sort key of score rows: best `by` first, ties broken by the other scores (in `SCORES` order)."""
    order = (by,) + tuple(s for s in SCORES if s != by)
    return lambda r: tuple(-r[s] for s in order)


def top_k(table: list[dict], k: int, by: str = "probe") -> list[str]:
    """The k best distinct layers of a :func:`score_table`, each ranked by its best step.

    Args:
        table: rows from :func:`score_table`. k: number of layers (>= 1). by: score to rank by.
    Returns:
        Layer specs (the ``layer`` strings), best first; fewer than k if the table has fewer layers.
    """
    if by not in SCORES:
        raise ValueError(f"by: expected one of {SCORES}, got {by!r}")
    if int(k) < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    best: dict[str, float] = {}
    for r in table:
        best[r["layer"]] = max(best.get(r["layer"], -math.inf), float(r[by]))
    return sorted(best, key=lambda name: -best[name])[: int(k)]
