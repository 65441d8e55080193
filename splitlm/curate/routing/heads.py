"""Learned prefix routers: a head that maps a prefix's embedding to its window's cluster.

The inputs are the run's embedder output for the prefixes of training windows, at several prefix
lengths stacked together, so one head serves every length; the target is the window's balanced
cluster (its shard). A head only routes: shard assignment never uses it.

`LinearHead` is multinomial logistic regression with an L2 penalty, fitted full-batch by L-BFGS in
float64 from zero weights, so the same rows give the same weights. Cost: each L-BFGS step is two
[N, D] x [D, K] products; 10k rows x 384 x 16 converge in ~100-300 steps, seconds on 2 cores.
Scores follow the router convention (lower is better): score = -logit, so `calibration` turns
them into probabilities with one temperature like the centroid rule's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_STEPS = 500


@dataclass(frozen=True)
class LinearHead:
    weights_DK: np.ndarray  # float32
    bias_K: np.ndarray  # float32

    @property
    def k(self) -> int:
        return len(self.bias_K)

    def scores(self, x_ND: np.ndarray) -> np.ndarray:
        """[N, K] float64, lower = better (negated logits)."""
        return -(np.asarray(x_ND, dtype=np.float64) @ self.weights_DK.astype(np.float64) + self.bias_K)

    def predict(self, x_ND: np.ndarray) -> np.ndarray:
        return self.scores(x_ND).argmin(axis=1)


def fit_linear(x_ND: np.ndarray, labels_N: np.ndarray, k: int, l2: float = 1e-3) -> LinearHead:
    """Softmax regression: mean cross-entropy + l2/2 * ||W||^2 (the bias is not penalised)."""
    from scipy.optimize import minimize

    x_ND = np.asarray(x_ND, dtype=np.float64)
    labels_N = np.asarray(labels_N, dtype=np.int64)
    n, d = x_ND.shape
    onehot_NK = np.zeros((n, k))
    onehot_NK[np.arange(n), labels_N] = 1.0

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w_DK, b_K = theta[: d * k].reshape(d, k), theta[d * k :]
        z_NK = x_ND @ w_DK + b_K
        z_NK -= z_NK.max(axis=1, keepdims=True)
        p_NK = np.exp(z_NK)
        p_NK /= p_NK.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(np.maximum((p_NK * onehot_NK).sum(1), 1e-300))) + 0.5 * l2 * (w_DK**2).sum()
        g_NK = (p_NK - onehot_NK) / n
        return loss, np.concatenate([(x_ND.T @ g_NK + l2 * w_DK).ravel(), g_NK.sum(0)])

    result = minimize(loss_and_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                      options={"maxiter": MAX_STEPS})
    theta = result.x
    return LinearHead(theta[: d * k].reshape(d, k).astype(np.float32), theta[d * k :].astype(np.float32))
