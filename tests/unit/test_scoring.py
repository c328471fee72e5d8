"""Layer-selection scores: known answers, a planted-signal ranking, determinism, sklearn cross-checks."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import silhouette_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from moaw_core.selection import scoring as S


def _planted(n_per=20, n_cls=3, d=24, sep=1.5, seed=0):
    """Three feature blocks for the same clips: one carries the class, two are noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_cls), n_per)
    means = rng.normal(0, sep, (n_cls, d))
    signal = means[y] + rng.normal(size=(len(y), d))
    return y, {("down.2", 10): signal, ("down.0", 10): rng.normal(size=(len(y), d)),
               ("up.1", 10): rng.normal(size=(len(y), d)) * 5.0}


def test_fisher_hand_value():
    X = np.array([[0.0], [2.0], [10.0], [12.0]])
    y = np.array([0, 0, 1, 1])
    # mu = 6, class means 1 and 11: S_b = 2*25 + 2*25 = 100, S_w = 4 * 1 = 4.
    assert S.fisher_ratio(X, y, n_components=1) == pytest.approx(25.0)
    assert S.fisher_ratio(np.array([[0.0], [0.0], [1.0], [1.0]]), y) == float("inf")


def test_planted_block_ranks_first_under_every_score():
    y, feats = _planted()
    for by in ("fisher", "silhouette", "probe"):
        table = S.score_table(feats, y, by=by)
        assert [r["layer"] for r in table][0] == "down.2", (by, table)
        assert S.top_k(table, 1, by=by) == ["down.2"]
    table = S.score_table(feats, y)
    sig = table[0]
    assert sig["probe"] > 0.9 and sig["silhouette"] > 0.2 and sig["fisher"] > 1.0
    for r in table[1:]:
        assert r["probe"] < 0.7 and r["silhouette"] < 0.1 and r["fisher"] < 0.5
    assert set(table[0]) == {"layer", "step", "fisher", "silhouette", "probe"}


def test_determinism_for_a_seed():
    y, feats = _planted(seed=3)
    X = feats[("down.0", 10)] + 0.6 * feats[("down.2", 10)]
    a = S.linear_probe_accuracy(X, y, folds=5, seed=11)
    assert a == S.linear_probe_accuracy(torch.from_numpy(X), torch.from_numpy(y), folds=5, seed=11)
    assert S.score_table(feats, y, seed=2) == S.score_table(feats, y, seed=2)
    folds = S.stratified_folds(y, 5, seed=4)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    for f in folds:  # stratified: 20 per class over 5 folds -> 4 of each class per fold
        assert np.bincount(y[f]).tolist() == [4, 4, 4]


def test_silhouette_matches_sklearn():
    y, feats = _planted(d=6, sep=0.8, seed=1)
    X = feats[("down.2", 10)]
    # With all components kept, PCA is a rotation: distances and the silhouette are unchanged.
    assert S.silhouette(X, y, n_components=6) == pytest.approx(silhouette_score(X, y), abs=1e-10)
    Z = PCA(n_components=3).fit_transform(X)
    assert S.silhouette(X, y, n_components=3) == pytest.approx(silhouette_score(Z, y), abs=1e-8)
    y1 = y.copy()
    y1[0] = 7  # a class of one scores 0 for that sample, as sklearn
    assert S.silhouette(X, y1, n_components=6) == pytest.approx(silhouette_score(X, y1), abs=1e-10)
    # Wide features (D > N) take the Gram path.
    Xw = np.random.default_rng(0).normal(size=(12, 40)) + np.repeat(np.eye(2, 40) * 4, 6, 0)
    yw = np.repeat([0, 1], 6)
    assert S.silhouette(Xw, yw, n_components=12) == pytest.approx(silhouette_score(Xw, yw), abs=1e-8)


def test_probe_roughly_matches_sklearn():
    y, feats = _planted(sep=0.35, seed=5)
    X = feats[("down.2", 10)]
    folds = S.stratified_folds(y, 5, seed=0)
    cv = [(np.setdiff1d(np.arange(len(y)), f), f) for f in folds]
    ref = cross_val_score(make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0)), X, y, cv=cv).mean()
    ours = S.linear_probe_accuracy(X, y, folds=5, seed=0)
    assert 0.4 < ref < 0.95  # the case is neither trivial nor hopeless
    assert ours == pytest.approx(ref, abs=1e-12)
    # Wide features (D > N) take the dual solve.
    Xw = np.hstack([X, np.random.default_rng(1).normal(size=(len(y), 200))])
    refw = cross_val_score(make_pipeline(StandardScaler(), RidgeClassifier(alpha=3.0)), Xw, y, cv=cv).mean()
    assert S.linear_probe_accuracy(Xw, y, folds=5, seed=0, alpha=3.0) == pytest.approx(refw, abs=1e-12)


def test_pool_features():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 4, 6, 8, 5)).astype(np.float32)  # [B, T, H, W, C]
    out = S.pool_features(h)
    assert isinstance(out, np.ndarray) and out.shape == (2, 4 * 5)
    np.testing.assert_allclose(out[1].reshape(4, 5), h[1].mean(axis=(1, 2)), atol=1e-5)
    np.testing.assert_allclose(S.pool_features(h[0]), out[0], atol=1e-6)
    static = np.repeat(h[:, :1], 4, axis=1)
    assert np.abs(S.pool_features(static, mode="rms", remove_content=True)).max() < 1e-6
    g = S.pool_features(torch.from_numpy(h[0]), grid=2)
    assert torch.is_tensor(g) and g.shape == (4 * 2 * 2 * 5,)
    np.testing.assert_allclose(g.reshape(4, 2, 2, 5)[:, 1, 0].numpy(), h[0, :, 3:, :4].mean(axis=(1, 2)),
                               atol=1e-5)
    with pytest.raises(ValueError, match="h: expected"):
        S.pool_features(h[0, 0])
    with pytest.raises(ValueError, match="mode"):
        S.pool_features(h, mode="max")


def test_bad_inputs():
    X = np.random.default_rng(0).normal(size=(10, 4))
    y = np.repeat([0, 1], 5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        S.fisher_ratio(X, np.zeros(10, int))
    with pytest.raises(ValueError, match="folds: expected"):
        S.linear_probe_accuracy(X[:4], y[3:7], folds=5)
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN"):
        S.silhouette(Xn, y)
    with pytest.raises(ValueError, match="y: expected 10 labels"):
        S.score_table({("a", 1): X}, y[:9])
    with pytest.raises(ValueError, match=r"X: expected \[N, D\]"):
        S.fisher_ratio(X[None], y)
    with pytest.raises(ValueError, match="integer labels"):
        S.fisher_ratio(X, y + 0.5)
    with pytest.raises(ValueError, match="by: expected"):
        S.top_k([], 2, by="auc")
    with pytest.raises(ValueError, match="features: expected"):
        S.score_table({}, y)


def test_grouped_folds_keep_scenes_together_and_remove_the_scene_shortcut():
    from moaw_core.selection.scoring import grouped_folds, linear_probe_accuracy

    rng = np.random.default_rng(0)
    n_cls, n_scene = 4, 6
    y = np.repeat(np.arange(n_cls), n_scene)
    scenes = np.tile(np.arange(n_scene), n_cls)
    folds = grouped_folds(y, scenes, 3, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(y)))
    for f in folds:
        held = set(scenes[f].tolist())
        assert all(s not in held for s in scenes[np.setdiff1d(np.arange(len(y)), f)])
    # Scene-only features (no class information): stratified folds are misled by the scene shortcut (a held-out
    # clip's scene is in training under the other classes: accuracy 0), grouped folds give chance (1 / 4).
    X = rng.normal(size=(n_scene, 50))[scenes] + 0.01 * rng.normal(size=(len(y), 50))
    assert linear_probe_accuracy(X, y, folds=3) == 0.0
    assert linear_probe_accuracy(X, y, folds=3, groups=scenes) == pytest.approx(0.25)
    # A real class signal is still found with grouped folds.
    X = rng.normal(size=(n_scene, 50))[scenes] + np.eye(n_cls)[y] @ rng.normal(size=(n_cls, 50))
    assert linear_probe_accuracy(X, y, folds=3, groups=scenes) > 0.9
    with pytest.raises(ValueError, match="number of groups"):
        grouped_folds(y, scenes, 7)
    with pytest.raises(ValueError, match="one per sample"):
        grouped_folds(y, scenes[:-1], 3)
