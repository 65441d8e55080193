"""The phonebook sweeps shipped in `examples/` (written by `make examples`) come from today's presets and
show the shapes the README claims for them: Fig. 2a's for the limited budget, Fig. 2b's for the
sufficient one. Regenerating them with a preset that loses the shape fails here."""

from __future__ import annotations

from pathlib import Path

from splitlm.train.phonebook.config import preset
from splitlm.train.phonebook.plot import read_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _curves(budget: str) -> dict[float, list[float]]:
    """Accuracy % by pretraining fraction, per overlap, of `examples/`'s sweep of `budget` (seed 0)."""
    folder = "phonebook" if budget == "limited" else f"phonebook-{budget}"
    rows = read_csv(EXAMPLES / folder / "phonebook.csv")
    cfg = preset("cpu", budget)
    assert {r["budget"] for r in rows} == {cfg.total_steps}, "examples/ is from another preset: make examples"
    curves = {}
    for alpha in cfg.alphas:
        points = sorted((r["pt_fraction"], 100 * r["accuracy"]) for r in rows if r["alpha"] == alpha)
        assert tuple(f for f, _ in points) == cfg.fractions
        curves[alpha] = [a for _, a in points]
    return curves


def _largest_fall(curve: list[float]) -> float:
    """How far accuracy ever drops below an earlier (smaller-fraction) point."""
    return max(max(curve[:i]) - curve[i] for i in range(1, len(curve)))


def test_limited_budget_peaks_inside_at_overlap_0_and_never_falls_at_overlap_1():
    curves = _curves("limited")
    assert max(curves[0.0][1:-1]) >= max(curves[0.0][0], curves[0.0][-1]) + 10
    assert _largest_fall(curves[1.0]) <= 3.0


def test_sufficient_budget_memorises_early_and_falls_with_less_overlap():
    curves = _curves("sufficient")
    assert min(c[0] for c in curves.values()) >= 95  # "sufficient": splitting at step 0 memorises (~100%)
    falls = [max(curves[a]) - curves[a][-1] for a in (0.0, 0.5)]
    assert falls[0] >= 10 and falls[0] > falls[1] > 0  # pretraining only holds less, the less the overlap
    assert min(curves[1.0]) >= 90  # one cluster's worth of facts: memorised at every split
