"""Scaling fit speed: an 800-point split-law fit with the default settings, twice (determinism).

Data: the paper's grid of runs (5 sizes x 8 PT budgets x 20 CPT budgets = 800 rows) generated
from known split-law parameters plus N(0, 0.005) noise. Fit on N <= 1.3B, score the held-out 2.7B
rows against the noise floor sigma sqrt(2/pi), and compare the planned t_s with the truth's. Also
times the Chinchilla reference (Epoch AI's 240 points). Bar: the 800-point fit in < 60 s.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit.py [--starts 8] [--hops 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from splitlm.train.scaling.fit import FitConfig, metrics
from splitlm.train.scaling.laws import Chinchilla, SplitLaw
from splitlm.train.scaling.plan import MixtureLoss, optimal_split
from splitlm.train.scaling.report import run_fit
from splitlm.train.scaling.table import EXAMPLE_SPLIT_PARAMS, TableSpec, parse_columns, synthetic_table

ROOT = Path(__file__).resolve().parent.parent
HOFFMANN = ROOT.parent / "shared" / "reference" / "chinchilla_epoch_svg_extracted.csv"
SIGMA = 0.005


def split_law(cfg: FitConfig, folder: Path) -> None:
    table = folder / "losses.csv"
    synthetic_table(SplitLaw(), EXAMPLE_SPLIT_PARAMS, sigma=SIGMA, seed=1).write_csv(table)
    for name, spec in (("all 800 rows", TableSpec()), ("N <= 1.3B", TableSpec(train_where="n_params <= 1.3e9"))):
        runs = [run_fit(table, SplitLaw(), spec, cfg) for _ in range(2)]
        a, b = (r.results["all"] for r in runs)
        same = np.array_equal(a.theta, b.theta)
        print(f"split law, fit on {name}: {a.n} points, {a.seconds:.1f} s and {b.seconds:.1f} s "
              f"({a.local_runs} L-BFGS-B runs), objective {a.objective:.7e}, identical reruns: {same}")
    test = runs[0].frame.filter(~pl.col("_train"))
    mae = metrics(test["_pred"].to_numpy(), test["_loss"].to_numpy())["mae"]
    floor = SIGMA * math.sqrt(2 / math.pi)
    print(f"  held-out 2.7B: MAE {mae:.5f} vs noise floor {floor:.5f} (difference {mae - floor:+.5f}, bar 0.001)")
    truth = np.array([EXAMPLE_SPLIT_PARAMS[n] for n in SplitLaw().names])
    for budget in (100e9, 400e9, 1e12):
        planned, best = (
            optimal_split(MixtureLoss((theta,), 1e9, 1e9), 2.7e9, budget, 16, 2.0**20).t_s
            for theta in (a.theta, truth)
        )
        print(f"  t_s at D_T = {budget:.0e}, N = 2.7B, K = 16: fitted {planned:.4g}, truth {best:.4g}, error {planned / best - 1:+.2%}")


def chinchilla(cfg: FitConfig) -> None:
    columns = parse_columns('N=Model Size,D="Training FLOP" / (6 * "Model Size"),loss=loss')
    spec = TableSpec(columns=columns, drop_highest=5)
    r = run_fit(HOFFMANN, Chinchilla(), spec, FitConfig(residuals="log", starts=cfg.starts, hops=cfg.hops, seed=cfg.seed))
    fit = r.results["all"]
    raw = Chinchilla().raw_params(fit.params, spec.n_unit, spec.token_unit)
    print(f"chinchilla reference: {fit.n} points, {fit.seconds:.1f} s, objective {fit.objective:.7e} (target 1.0182740e-03), "
          + ", ".join(f"{k} {v:.4f}" for k, v in raw.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--hops", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cfg = FitConfig(starts=args.starts, hops=args.hops, seed=args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        split_law(cfg, Path(folder))
    chinchilla(cfg)
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
