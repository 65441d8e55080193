"""Router calibration: temperature fit, probabilities, reliability bins and ECE."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from splitlm.curate.routing.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    probabilities,
    reliability,
)


def _sampled(n: int, k: int, temperature: float, seed: int = 0):
    """Scores shaped like biased squared distances, and labels drawn from their softmax at `temperature`."""
    rng = np.random.default_rng(seed)
    scores_NK = rng.uniform(0.2, 1.8, size=(n, k))
    p_NK = probabilities(scores_NK, temperature)
    labels_N = (p_NK.cumsum(1) > rng.random((n, 1))).argmax(1)
    return scores_NK, labels_N


def test_the_fit_recovers_the_temperature_the_labels_were_drawn_at():
    for t0 in (0.05, 0.2):
        scores_NK, labels_N = _sampled(20_000, 8, t0)
        t = fit_temperature(scores_NK, labels_N)
        assert abs(t / t0 - 1) < 0.1
        assert nll(scores_NK, labels_N, t) <= min(nll(scores_NK, labels_N, t * 1.2), nll(scores_NK, labels_N, t / 1.2))


def test_a_fitted_temperature_is_calibrated_and_a_wrong_one_is_not():
    scores_NK, labels_N = _sampled(20_000, 8, 0.1, seed=1)
    t = fit_temperature(scores_NK, labels_N)

    def ece(temperature):
        p_NK = probabilities(scores_NK, temperature)
        return expected_calibration_error(p_NK.max(1), p_NK.argmax(1) == labels_N)

    assert ece(t) < 0.02
    assert ece(t / 5) > 0.1  # overconfident


def test_temperature_never_changes_the_route():
    scores_NK, _ = _sampled(500, 6, 0.3, seed=2)
    for t in (0.01, 1.0, 30.0):
        p_NK = probabilities(scores_NK, t)
        np.testing.assert_allclose(p_NK.sum(1), 1.0)
        assert (p_NK.argmax(1) == scores_NK.argmin(1)).all()


def test_ece_by_hand():
    # bins of width 0.1: 0.95 x2 (right once), 0.55 (right), 0.45 (right)
    rel = reliability([0.95, 0.95, 0.55, 0.45], [True, False, True, True])
    assert rel.count_B.tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 2]
    assert abs(rel.ece - (2 * 0.45 + 0.45 + 0.55) / 4) < 1e-12
    assert rel.count_B.sum() == 4 and np.isnan(rel.accuracy_B[0])


def test_nothing_to_fit_on_keeps_temperature_one():
    assert fit_temperature(np.zeros((0, 4)), np.zeros(0, dtype=np.int64)) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=200))
def test_ece_is_a_share(rows):
    conf, right = zip(*rows)
    rel = reliability(conf, right)
    assert 0.0 <= rel.ece <= 1.0 and rel.count_B.sum() == len(rows)
