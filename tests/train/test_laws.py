"""Laws: transforms stay in bounds and invert, gradients match finite differences, limits hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splitlm.core.errors import ConfigError
from splitlm.train.scaling.laws import LAWS, Chinchilla, LiewKato, Points, SplitLaw, make_law
from splitlm.train.scaling.table import EXAMPLE_SPLIT_PARAMS


def _points(rng: np.random.Generator, n: int = 40) -> Points:
    return Points(rng.uniform(0.05, 3.0, n), rng.uniform(1.0, 200.0, n), rng.uniform(0.5, 30.0, n))


def _random_theta(law, rng: np.random.Generator) -> np.ndarray:
    return law.natural(rng.normal(0.0, 1.5, len(law.params)))[0]


@pytest.mark.parametrize("name", sorted(LAWS))
def test_transforms_stay_in_bounds_and_invert(name: str) -> None:
    law, rng = make_law(name), np.random.default_rng(0)
    for _ in range(20):
        u = rng.normal(0.0, 3.0, len(law.params))
        v, dv = law.natural(u)
        assert all(p.lo <= x <= p.hi for p, x in zip(law.params, v))
        np.testing.assert_allclose(law.free(v), u, rtol=1e-6, atol=1e-6)
        eps = 1e-6  # dv/du is the derivative the fit's chain rule relies on
        for i in range(len(u)):
            up = u.copy()
            up[i] += eps
            assert law.natural(up)[0][i] - v[i] == pytest.approx(dv[i] * eps, rel=1e-4, abs=1e-12)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_jacobian_matches_finite_differences(name: str) -> None:
    law, rng = make_law(name), np.random.default_rng(1)
    x = _points(rng)
    if name == "split":  # include the no-CPT baseline rows, where log(Dk) terms must vanish
        x = Points(x.N, x.D, np.where(np.arange(len(x)) % 4 == 0, 0.0, x.Dk))
    theta = _random_theta(law, rng)
    pred, jac = law.predict_jacobian(theta, x)
    np.testing.assert_array_equal(pred, law.predict(theta, x))
    assert np.all(np.isfinite(jac))
    for i in range(len(theta)):
        h = 1e-6 * max(abs(theta[i]), 1.0)
        up, dn = theta.copy(), theta.copy()
        up[i] += h
        dn[i] -= h
        fd = (law.predict(up, x) - law.predict(dn, x)) / (2 * h)
        np.testing.assert_allclose(jac[:, i], fd, rtol=1e-5, atol=1e-8, err_msg=law.names[i])


def test_split_law_desiderata() -> None:
    """Sec. 4.2: Chinchilla-like without CPT; the same asymptote for infinite CPT whatever D."""
    law = SplitLaw()
    p = EXAMPLE_SPLIT_PARAMS
    theta = np.array([p[n] for n in law.names])
    N, D = np.array([1.3]), np.array([40.0])
    no_cpt = law.predict(theta, Points(N, D, np.array([0.0])))
    fN = 1 / (1 + (N / p["Ns"]) ** p["gamma1"])
    expected = p["E0"] + p["Ep"] * fN + p["A"] / (p["c"] * D ** p["alpha2"]) + p["B"] * N ** -p["kappa"]
    np.testing.assert_allclose(no_cpt, expected)
    huge = np.array([1e12])
    limits = [law.predict(theta, Points(N, np.array([d]), huge))[0] for d in (1.0, 100.0, 1e4)]
    np.testing.assert_allclose(limits, p["E0"] + p["B"] * N[0] ** -p["kappa"], atol=1e-3)


def test_split_partials_match_finite_differences_and_diverge_at_zero_cpt() -> None:
    law = SplitLaw()
    theta = np.array([EXAMPLE_SPLIT_PARAMS[n] for n in law.names])
    dD, dK = law.partials(theta, 1.3, 40.0, 5.0)
    f = lambda D, Dk: law.predict(theta, Points(np.array([1.3]), np.array([D]), np.array([Dk])))[0]  # noqa: E731
    h = 1e-5
    assert dD == pytest.approx((f(40 + h, 5) - f(40 - h, 5)) / (2 * h), rel=1e-5)
    assert dK == pytest.approx((f(40, 5 + h) - f(40, 5 - h)) / (2 * h), rel=1e-5)
    assert law.partials(theta, 1.3, 40.0, 0.0)[1] == -math.inf  # alpha1 < 1: eq. 5.2 has no root


def test_chinchilla_raw_units_predict_the_same() -> None:
    law, rng = Chinchilla(), np.random.default_rng(2)
    theta = _random_theta(law, rng)
    x = _points(rng)
    raw = law.raw_params(dict(zip(law.names, theta)), n_unit=1e9, token_unit=1e6)
    x_raw = Points(x.N * 1e9, x.D * 1e6, x.Dk * 1e6)
    np.testing.assert_allclose(law.predict(np.array([raw[n] for n in law.names]), x_raw), law.predict(theta, x))


def test_validity_masks() -> None:
    x = Points(np.array([1.0, 1.0, 1.0]), np.array([10.0, 0.0, 10.0]), np.array([0.0, 5.0, 5.0]))
    assert SplitLaw().valid(x).tolist() == [True, True, True]
    assert LiewKato().valid(x).tolist() == [False, False, True]
    assert SplitLaw().valid(Points(np.ones(1), np.zeros(1), np.zeros(1))).tolist() == [False]


def test_bounds_override_and_errors() -> None:
    law = make_law("split", {"Ds": (0.001, 1.0), "B": (0.0, math.inf)})
    assert law.params[law.names.index("Ds")].hi == 1.0
    with pytest.raises(ConfigError, match="not parameters"):
        make_law("split", {"delta": (0.0, 1.0)})
    with pytest.raises(ConfigError, match="LO < HI"):
        make_law("chinchilla", {"alpha": (1.0, 0.5)})
    with pytest.raises(ConfigError, match="choose one of"):
        make_law("kaplan")
