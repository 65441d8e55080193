"""Learned prefix router heads."""

import numpy as np

from splitlm.curate.routing.heads import fit_linear


def _blobs(n: int, k: int, d: int, noise: float, seed: int):
    rng = np.random.default_rng(seed)
    centers_KD = rng.normal(size=(k, d))
    labels_N = rng.integers(0, k, size=n)
    x_ND = centers_KD[labels_N] + noise * rng.normal(size=(n, d))
    return x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True), labels_N


def test_the_linear_head_learns_held_out_clusters():
    x_ND, y_N = _blobs(3000, 6, 32, 2.0, seed=0)
    head = fit_linear(x_ND[:2000], y_N[:2000], 6)
    held_out = (head.predict(x_ND[2000:]) == y_N[2000:]).mean()
    nearest_mean = np.stack([x_ND[:2000][y_N[:2000] == c].mean(0) for c in range(6)])
    baseline = ((x_ND[2000:] @ nearest_mean.T).argmax(1) == y_N[2000:]).mean()
    assert held_out > 0.5 and held_out >= baseline - 0.02  # no worse than the class-mean rule it generalises


def test_the_linear_head_is_deterministic():
    x_ND, y_N = _blobs(800, 4, 16, 1.0, seed=1)
    a, b = fit_linear(x_ND, y_N, 4), fit_linear(x_ND, y_N, 4)
    assert a.weights_DK.tobytes() == b.weights_DK.tobytes() and a.bias_K.tobytes() == b.bias_K.tobytes()


def test_scores_rank_like_the_router_rule_lower_is_better():
    x_ND, y_N = _blobs(600, 3, 8, 0.5, seed=2)
    head = fit_linear(x_ND, y_N, 3)
    scores_NK = head.scores(x_ND)
    assert scores_NK.shape == (600, 3) and (head.predict(x_ND) == scores_NK.argmin(1)).all()
    assert (head.predict(x_ND) == y_N).mean() > 0.9


def test_blocked_folds_partition_windows_in_whole_blocks():
    from splitlm.curate.routing.folds import blocked_folds

    fold_N = blocked_folds(1000, folds=5, block=64, seed=3)
    ids = np.arange(1000)
    for f in range(5):
        train, test = set(ids[fold_N != f]), set(ids[fold_N == f])
        assert train.isdisjoint(test) and len(train) + len(test) == 1000 and test
    assert all(len(set(fold_N[lo:lo + 64])) == 1 for lo in range(0, 1000, 64))
    assert (blocked_folds(1000, seed=3) == fold_N).all() and not (blocked_folds(1000, seed=4) == fold_N).all()
