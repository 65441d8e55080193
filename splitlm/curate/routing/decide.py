"""From a prefix's embedding to a route: the chosen cluster, its probability, the runner-up.

The centroid router's scores are the biased squared distances `s_c(x) = ||x - c||^2 + b_c`; the
learned router's are its head's negated logits, `-(z(x) W + b + balance - s(x) / T0)` (a residual on
the centroid rule, see `splitlm.curate.routing.heads`). Either way the probabilities are the softmax
of `-scores / T`, with T the temperature fitted at the prefix length nearest the one routed
(`splitlm.schemas.routing.temperature_at`); a run without a routing stage has no fitted T and uses
T = 1 (its probabilities are then only a ranking, not calibrated). The chosen cluster is the
best score, so probabilities never change a route.
"""

from __future__ import annotations

import numpy as np

from splitlm.curate.routing.calibration import probabilities
from splitlm.curate.routing.files import Routing
from splitlm.curate.routing.heads import centroid_scores
from splitlm.schemas.routing import temperature_at

UNCALIBRATED_T = 1.0


def router_scores(x_ND: np.ndarray, centroids_KD: np.ndarray, biases_K: np.ndarray, routing: Routing | None
                  ) -> tuple[np.ndarray, str]:
    """([N, K] float64 scores, lower is better; the router's name)."""
    c_NK = centroid_scores(x_ND, centroids_KD, biases_K)
    if routing is None or routing.head is None:
        return c_NK, "centroid"
    prior_NK = -c_NK / routing.spec.head.prior_temperature
    return -(routing.head.logits(x_ND, prior_NK) + routing.balance_K.astype(np.float64)), "learned"


def temperature(routing: Routing | None, prefix_tokens: int) -> float:
    if routing is None:
        return UNCALIBRATED_T
    spec = routing.spec
    temps = spec.head.temperatures if routing.head is not None else spec.centroid_temperatures
    return temperature_at(spec.prefix_lengths, temps, prefix_tokens)


def top2_probabilities(scores_NK: np.ndarray, chosen_N: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(probability of the chosen cluster float32, the best other cluster int32) per row."""
    p_NK = probabilities(scores_NK, t)
    rows = np.arange(len(p_NK))
    prob_N = p_NK[rows, chosen_N].astype(np.float32)
    if p_NK.shape[1] == 1:
        return prob_N, np.full(len(p_NK), -1, dtype=np.int32)
    others_NK = p_NK.copy()
    others_NK[rows, chosen_N] = -1.0
    return prob_N, others_NK.argmax(1).astype(np.int32)
