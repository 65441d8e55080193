"""Which parameters of a law a set of runs can pin down, and the refusal of underdetermined fits.

A fit of p parameters to n < p points has a (p - n)-dimensional family of exact solutions: the
optimiser returns one of them, whichever its start lands near, with a perfect train score. Even
with n >= p the data may not separate some parameters: with one model size N, the split law's
B N^-kappa is one constant that E0 absorbs, and Ns, gamma1 only rescale Ep.

`unpinned` finds those parameters from the law's Jacobian at the runs: taking the parameters in
the law's own order (the floor first, then the shape terms), a parameter is pinned down when its
column (normalised) adds a direction the columns before it do not span. The Jacobian is taken at
the middle of every parameter's start range; a degeneracy of the design (one size, one split point,
no continued pretraining) holds at every parameter value, an accidental one at a single point has
probability zero. Cost: one Jacobian of n x p.
"""

from __future__ import annotations

import math

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.train.scaling.laws import Law, Points

TOL = 1e-6
"""A column whose part outside the span of the columns before it is below TOL (of unit norm) adds nothing."""


def midpoint(law: Law) -> np.ndarray:
    """The middle of every parameter's start range (geometric for log-scaled ones)."""
    mids = []
    for p in law.params:
        lo, hi = p.start_range
        mids.append(math.sqrt(lo * hi) if p.log_scale else 0.5 * (lo + hi))
    return np.array(mids)


def unpinned(law: Law, x: Points) -> list[str]:
    """Parameters of `law` that the runs `x` cannot pin down, in the law's order."""
    with np.errstate(all="ignore"):
        _, jac = law.predict_jacobian(midpoint(law), x)
    basis: list[np.ndarray] = []
    out = []
    for name, col in zip(law.names, jac.T):
        norm = float(np.linalg.norm(col))
        if not math.isfinite(norm) or norm == 0.0:
            out.append(name)
            continue
        r = col / norm
        for _ in range(2):  # Gram-Schmidt twice: stable enough for near-parallel columns
            for q in basis:
                r = r - (q @ r) * q
        if np.linalg.norm(r) > TOL:
            basis.append(r / np.linalg.norm(r))
        else:
            out.append(name)
    return out


def check(law: Law, fits: dict[str, Points], allow: bool) -> list[str]:
    """Refuse a law with fewer points than parameters (unless `allow`); return warnings for the rest.

    `fits`: the train points of every fit, keyed by what to call it (`split law for cluster 3`).
    """
    problems, warnings = [], []
    p = len(law.params)
    for who, x in fits.items():
        if not len(x):
            continue  # fit_law says there are no training rows, and why
        loose = unpinned(law, x)
        names = ", ".join(loose) if loose else "none singled out"
        if len(x) < p:
            problems.append(f"{who}: {len(x)} points for {p} parameters; cannot pin down {names}")
        elif loose:
            warnings.append(f"{who}: the data cannot pin down {names}; their fitted values are arbitrary")
    if problems and not allow:
        more = f" (and {len(problems) - 1} more fits alike)" if len(problems) > 1 else ""
        raise ConfigError(f"{problems[0]}{more}; add runs (sizes, split points, evaluations), share parameters "
                          "across groups with --share, or pass --allow-underdetermined")
    return [f"underdetermined: {text}" for text in problems] + warnings
