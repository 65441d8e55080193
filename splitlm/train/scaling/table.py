"""Read a table of runs for `train fit`: columns, filters, train/test scenarios, law units.

Input: CSV or Parquet with one row per evaluation. The default columns are `train split`'s losses
table (N = n_params, D = pt_tokens, Dk = cpt_tokens, loss = eval_loss); any of them can be a column
name or a SQL expression over columns (polars' `sql_expr`, double-quote names with spaces), e.g.
D = "Training FLOP" / (6 * "Model Size") for Hoffmann et al.'s points.

Rows kept, in order: a branch's own-cluster evaluations (eval_cluster == cluster, when both columns
exist); finite values; minus the `drop_highest` largest losses; losses inside `keep` (the paper
drops > 4.0 and < 0.5); rows where the law is defined. Every drop is counted by reason.

Train rows: `train_where` (a SQL condition, e.g. "n_params <= 1.3e9") and the scenario: `low-d`
keeps D at or below the median of the distinct D values (the lower half of the PT settings),
`low-d-dk` also Dk at or below the median of the distinct Dk values. Every other row is test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from splitlm.core.errors import ConfigError, InputError
from splitlm.train import flags
from splitlm.train.scaling.laws import BILLION, Law, Points

DEFAULT_COLUMNS = {"N": "n_params", "D": "pt_tokens", "Dk": "cpt_tokens", "loss": "eval_loss"}
Scenario = Literal["all", "low-d", "low-d-dk"]
SCENARIOS = ("all", "low-d", "low-d-dk")


def parse_columns(text: str | None) -> dict[str, str]:
    """'N=n_params,D=pt_tokens' -> mapping over the defaults; commas inside expressions are kept."""
    columns = dict(DEFAULT_COLUMNS)
    if not text:
        return columns
    for item in re.split(r",(?=\s*\w+\s*=)", text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in DEFAULT_COLUMNS or not value.strip():
            raise ConfigError(f"--columns {item!r}: expected KEY=COLUMN with KEY in {', '.join(DEFAULT_COLUMNS)}")
        columns[key] = value.strip()
    return columns


@dataclass(frozen=True)
class TableSpec:
    """Which rows of a table to fit, in which units, and which of them to train on."""

    columns: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    keep: tuple[float, float] = (0.5, 4.0)
    """Losses outside [lo, hi] are outliers (App. G.1)."""
    drop_highest: int = 0
    """Also drop this many of the highest losses first (Epoch AI drop 5 of Hoffmann et al.'s)."""
    by: str | None = None
    """Fit one law per value of this column (e.g. cluster)."""
    train_where: str | None = None
    scenario: Scenario = "all"
    n_unit: float = BILLION
    token_unit: float = BILLION

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"--scenario {self.scenario!r}: choose one of {', '.join(SCENARIOS)}")
        flags.number("--n-unit", self.n_unit, above=0)
        flags.number("--token-unit", self.token_unit, above=0)
        flags.number("--drop-highest", self.drop_highest, least=0)
        lo, hi = (flags.number("--keep", v, finite=False) for v in self.keep)
        if not lo < hi:
            raise ConfigError(f"--keep {lo:g},{hi:g}: need LO < HI")


@dataclass(frozen=True, eq=False)
class Runs:
    """Canonical rows: `_N`, `_D`, `_Dk` in law units, `_loss`, `_group` (str), `_train` (bool)."""

    frame: pl.DataFrame
    read: int
    dropped: dict[str, int]

    def points(self, frame: pl.DataFrame | None = None) -> Points:
        f = self.frame if frame is None else frame
        return Points(f["_N"].to_numpy(), f["_D"].to_numpy(), f["_Dk"].to_numpy())

    @property
    def groups(self) -> list[str]:
        return sorted(self.frame["_group"].unique().to_list(), key=_natural_key)


def _natural_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def read_table(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: no such table (expected a CSV or Parquet file, e.g. TRAIN/losses.csv)")
    try:
        if path.suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise InputError(f"{path}: cannot read as a table: {' '.join(str(err).split())}") from err


def _expr(df: pl.DataFrame, text: str, flag: str) -> pl.Expr:
    if text in df.columns:
        return pl.col(text)
    try:
        expr = pl.sql_expr(text)
        df.head(1).select(expr)  # resolve names now so a typo is a one-line error
    except Exception as err:  # polars raises several types for bad SQL or unknown columns
        reason = " ".join(str(err).split())  # polars' messages span lines; the CLI prints one
        raise ConfigError(f"{flag} {text!r}: not a column or a valid expression over {df.columns}: {reason}") from err
    return expr


def _numbers(df: pl.DataFrame, text: str, flag: str, path: Path) -> pl.Series:
    """Column or expression `text` as floats; text in it is an InputError naming the first bad row."""
    try:
        col = df.select(_expr(df, text, flag).alias("v"))["v"]
    except pl.exceptions.PolarsError as err:
        raise InputError(f"{path}: {flag} {text!r} cannot be computed: {' '.join(str(err).split())[:200]}") from None
    if col.dtype.is_numeric() or col.dtype == pl.Null:
        return col.cast(pl.Float64)
    values = col.cast(pl.String).cast(pl.Float64, strict=False)
    bad = values.is_null() & col.is_not_null()
    if bad.any():
        i = int(bad.arg_true()[0])
        where = f"{path}:{i + 2}" if path.suffix == ".csv" else f"{path}: row {i + 1}"
        raise InputError(f"{where}: {flag} {text!r} holds {str(col[i])[:40]!r}, not a number; fix the row or "
                         f"point {flag} at a numeric column")
    return values


def _canonical(df: pl.DataFrame, spec: TableSpec, path: Path) -> pl.DataFrame:
    """One row per input row: `_N`, `_D`, `_Dk` in law units, `_loss`, `_group`, `_train`."""
    cols = spec.columns
    if spec.by is not None and spec.by not in df.columns:
        raise ConfigError(f"--by {spec.by!r}: no such column in {df.columns}")
    no_dk = cols["Dk"] == DEFAULT_COLUMNS["Dk"] and cols["Dk"] not in df.columns
    dk = pl.zeros(df.height, pl.Float64, eager=True) if no_dk else _numbers(df, cols["Dk"], "--columns Dk", path)
    train = pl.lit(True) if not spec.train_where else _expr(df, spec.train_where, "--train-where").fill_null(False)
    numbers = pl.DataFrame({
        "_N": _numbers(df, cols["N"], "--columns N", path) / spec.n_unit,
        "_D": _numbers(df, cols["D"], "--columns D", path) / spec.token_unit,
        "_Dk": dk / spec.token_unit,
        "_loss": _numbers(df, cols["loss"], "--columns loss", path),
    })
    return numbers.hstack(df.with_columns(  # with_columns, not select: literals fill every row
        (pl.col(spec.by).cast(pl.String) if spec.by else pl.lit("all")).alias("_group"),
        train.cast(pl.Boolean).alias("_train"),
    ).select("_group", "_train"))


def load_runs(path: Path, spec: TableSpec, law: Law) -> Runs:
    """The rows to fit with train/test flags; raises ConfigError when nothing is left."""
    df = read_table(path)
    read, dropped = df.height, {}

    def drop(reason: str, keep: pl.Expr | pl.Series) -> None:
        nonlocal df
        before = df.height
        df = df.filter(keep)
        if before - df.height:
            dropped[reason] = before - df.height

    own = pl.lit(True)
    if "eval_cluster" in df.columns and "cluster" in df.columns:
        own = df.select(pl.col("eval_cluster").cast(pl.String) == pl.col("cluster").cast(pl.String)).to_series()
    df = _canonical(df, spec, path)  # row i is still the table's row i: errors can name it
    drop("other_cluster_eval", own)
    finite = pl.all_horizontal(pl.col(c).is_finite() for c in ("_N", "_D", "_Dk", "_loss"))
    drop("missing_or_nonfinite", finite.fill_null(False))
    if spec.drop_highest:
        keep = np.ones(df.height, bool)
        keep[df["_loss"].arg_sort(descending=True).head(spec.drop_highest).to_numpy()] = False
        drop("highest_losses", pl.Series(keep))
    if df.height and not df["_loss"].is_between(*spec.keep).any():
        raise ConfigError(
            f"{path}: all {df.height} losses ({df['_loss'].min():.3g}-{df['_loss'].max():.3g}) are outside --keep "
            f"{spec.keep[0]:g},{spec.keep[1]:g} (the paper's outlier range); widen it, "
            "e.g. --keep 0.5,12 for tiny models"
        )
    drop("outlier_loss", pl.col("_loss").is_between(*spec.keep))
    x = Points(df["_N"].to_numpy(), df["_D"].to_numpy(), df["_Dk"].to_numpy())
    drop(f"undefined_for_{law.name}", pl.Series(law.valid(x)))
    if df.is_empty():
        raise ConfigError(f"{path}: no rows left to fit after filtering (dropped {dropped}); check --columns, --keep")
    df = df.with_columns(pl.col("_train") & _scenario(df, spec.scenario))
    return Runs(df, read, dropped)


def _scenario(df: pl.DataFrame, scenario: Scenario) -> pl.Expr:
    low = pl.lit(True)
    if scenario in ("low-d", "low-d-dk"):
        low = low & (pl.col("_D") <= float(np.median(df["_D"].unique().to_numpy())))
    if scenario == "low-d-dk":
        low = low & (pl.col("_Dk") <= float(np.median(df["_Dk"].unique().to_numpy())))
    return low


# Plausible split-law parameters inside Table 6's bounds, and the paper's grid of runs (Sec. 5.1,
# App. G.1: 100M-2.7B parameters, 5B-200B PT tokens, 0-30B CPT tokens): 5 x 8 x 20 = 800 rows.
EXAMPLE_SPLIT_PARAMS = {
    "E0": 1.9, "Ep": 0.35, "Ns": 1.0, "gamma1": 0.5, "Ds": 600.0, "gamma2": 0.5,
    "A": 1.6, "alpha1": 0.35, "alpha2": 0.3, "c": 1.2, "B": 0.25, "kappa": 0.35,
}
PAPER_SIZES = (100e6, 350e6, 760e6, 1.3e9, 2.7e9)
PAPER_PT_TOKENS = tuple(v * BILLION for v in (5, 10, 20, 40, 80, 120, 160, 200))
PAPER_CPT_TOKENS = tuple(np.linspace(0.0, 30 * BILLION, 20))


def synthetic_table(
    law: Law,
    truth: dict[str, float],
    sizes: tuple[float, ...] = PAPER_SIZES,
    pt_tokens: tuple[float, ...] = PAPER_PT_TOKENS,
    cpt_tokens: tuple[float, ...] = PAPER_CPT_TOKENS,
    sigma: float = 0.005,
    seed: int = 0,
    clusters: int = 1,
) -> pl.DataFrame:
    """A losses table in `train split`'s columns from known parameters plus N(0, sigma) noise.

    One row per (cluster, size, PT tokens, CPT tokens); sizes in parameters, tokens as counts,
    the law evaluated in billions of both. Used by the tests and benchmarks/fit.py.
    """
    grid = np.array(np.meshgrid(np.arange(clusters), sizes, pt_tokens, cpt_tokens, indexing="ij")).reshape(4, -1)
    cluster, n, d, dk = grid[0].astype(int), grid[1], grid[2], grid[3]
    x = Points(n / BILLION, d / BILLION, dk / BILLION)
    keep = law.valid(x)
    theta = np.array([truth[name] for name in law.names])
    loss = law.predict(theta, x.take(keep)) + np.random.default_rng(seed).normal(0.0, sigma, int(keep.sum()))
    return pl.DataFrame({
        "size": [f"{v / 1e6:.0f}M" for v in n[keep]],
        "n_params": n[keep].astype(np.int64),
        "pt_tokens": d[keep].astype(np.int64),
        "cpt_tokens": dk[keep].astype(np.int64),
        "cluster": cluster[keep],
        "eval_cluster": cluster[keep],
        "split_at": d[keep].astype(np.int64),
        "eval_loss": loss,
    })
