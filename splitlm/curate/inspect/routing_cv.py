"""Cross-validated routing accuracy by prefix length, per router (`inspect/routing_cv.csv`).

Protocol (issue 11, Deliver 3), for every prefix length P and each router the run has (`centroid`
always; `learned` when `RUN/routing/` holds a head):

- `cv` rows: 5-fold cross-validation over the run's TRAINING windows (the shards' training split,
  which the routing stage fits on; at most `cv_windows` of them, a
  seeded sample, sorted by window id). Folds are blocks of 64 consecutive windows (fewer on runs
  under 640 windows: `block_size`) dealt by a seeded permutation (`splitlm.curate.routing.folds.blocked_folds`), so a document crossing a window
  boundary rarely straddles folds. For each fold, everything the routing stage fits is refitted on
  the other four folds only (`splitlm.curate.routing.stage.fit_routing` with the run's routing
  config: the centroid rule's temperatures and, learned, the head, its balance biases and its
  temperatures), then the held-out fold is routed. No window is ever routed by a fit that saw it.
  The centroid rule's centroids and biases are NOT refitted: they come from clustering, which saw
  every window (the rule itself is the clustering's output, so its CV accuracy is the accuracy of
  the shipped rule, with only its temperatures cross-validated). A run without a routing stage
  routes with T = 1 and fits nothing, so its folds only split the windows.
- `val` rows: the held-out validation windows (the shards' validation split; at most `sample` of
  them, a seeded draw), routed by the run's routers as the routing stage fitted them (on training
  windows only).

Each row has its window count n, the top-1 accuracy with a 95% Wilson score interval
(`wilson`; it stays inside [0, 1] at small n), and the ECE (10 bins) of the router's probability
for its choice. CV accuracy pools the five held-out folds (each window is routed exactly once).

Cost: prefix embeddings are shared with the recall measurement (`routing.prefix_routing`'s prefix
vectors of the windows it sampled, and its text -> vector map; a window's stored vector where the
prefix is its exact model input), so with `--split all` nothing new is embedded or tokenised;
otherwise up to `cv_windows` x len(P) texts are.
Fits are 5 x (K temperatures per length [+ one head]).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from splitlm.curate.cluster.router import Router
from splitlm.curate.inspect.routing import RoutingStats, prefix_vectors
from splitlm.curate.routing.calibration import expected_calibration_error
from splitlm.curate.routing.files import Routing
from splitlm.curate.routing.folds import blocked_folds
from splitlm.curate.routing.stage import RoutingConfig, fit_routing, training_windows
from splitlm.schemas.layout import RunLayout
from splitlm.schemas.manifest import StageManifest

CV_WINDOWS = 4_000  # training windows sampled for the cross-validation (95% interval about +-0.015 at 4,000)
FOLDS = 5
BLOCK = 64  # consecutive windows per fold block (as the routing stage's own split)
MIN_BLOCK = 8  # smaller runs: blocks shrink to give each fold about two, but not below this
Z95 = 1.959964
CV_COLUMNS = ("router", "prefix_tokens", "split", "n", "top1", "top1_low", "top1_high", "ece")


@dataclass(frozen=True)
class CvRow:
    router: str  # centroid | learned
    prefix_tokens: int
    split: str  # cv | val
    n: int
    top1: float
    top1_low: float
    top1_high: float
    ece: float


@dataclass(frozen=True, eq=False)
class CvPlan:
    """Which windows are fitted on and routed where: training windows in folds, validation windows apart."""

    train_ids: np.ndarray  # int64 sorted: the sampled training windows
    fold_N: np.ndarray  # int8 fold of each of them
    val_ids: np.ndarray  # int64 sorted: the validation windows routed for the val rows

    def folds(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(fold, positions in `train_ids` fitted on, positions routed) for each fold with windows to route."""
        for f in range(FOLDS):
            test = np.flatnonzero(self.fold_N == f)
            if len(test):
                yield f, np.flatnonzero(self.fold_N != f), test


def split_windows(run: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) window ids, int64 sorted, as the shards hold them (what the routing stage fits on).

    The shards' split, not the windows table's `is_val`: the shards stage caps and tops up the
    validation split and drops windows that share a document with it.
    """
    layout = RunLayout(run)
    val = [pq.read_table(layout.shard(c, k, "val") / "index.parquet", columns=["window_id"]).column(0).to_numpy()
           for c in range(k)]
    return training_windows(run, k)[0], np.sort(np.concatenate(val).astype(np.int64)) if k else np.zeros(0, np.int64)


def plan(train_pool: np.ndarray, val_pool: np.ndarray, cv_windows: int, val_windows: int, seed: int) -> CvPlan:
    """The protocol's windows: a seeded sample of training windows in blocked folds, and validation windows."""
    train_ids = _sample(np.asarray(train_pool, dtype=np.int64), cv_windows, seed)
    val_ids = _sample(np.asarray(val_pool, dtype=np.int64), val_windows, seed)
    return CvPlan(train_ids, blocked_folds(len(train_ids), FOLDS, block_size(len(train_ids)), seed), val_ids)


def block_size(n: int) -> int:
    """64 windows a block, down to 8 on runs too small for two such blocks a fold (demo: 364 windows -> 36)."""
    return min(BLOCK, max(MIN_BLOCK, n // (2 * FOLDS)))


def _sample(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(pool) <= n:
        return pool.astype(np.int64)
    return np.sort(np.random.default_rng(seed).choice(pool, n, replace=False)).astype(np.int64)


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a share hits / n ((nan, nan) when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def routing_config(run: Path) -> RoutingConfig | None:
    """The config the run's routing stage was fitted with (None: the run has no routing stage)."""
    folder = Path(run) / "routing"
    if not (folder / "manifest.json").exists():
        return None
    cfg = StageManifest.read(folder).config
    return RoutingConfig(router=cfg["router"], max_windows=cfg["max_windows"], l2=cfg["l2"], seed=cfg["seed"],
                         prefix_lengths=tuple(cfg["prefix_lengths"]))


def routers_of(router: Router, routing: Routing | None) -> dict[str, Router]:
    """{name: router} for the centroid rule (with `routing`'s temperatures) and, if `routing` has a head, the learned one."""
    base = Routing(routing.spec) if routing is not None else None  # the head left out: the centroid rule
    out = {"centroid": Router(router.centroids_KD, router.biases_K, router.spec, routing=base)}
    if routing is not None and routing.head is not None:
        out["learned"] = Router(router.centroids_KD, router.biases_K, router.spec, routing=routing)
    return out


@dataclass(frozen=True, eq=False)
class CvResult:
    rows: list[CvRow]
    plan: CvPlan
    chosen: dict[str, dict[int, np.ndarray]]  # router -> P -> int32 cluster chosen per train window (held out)


def routing_cv(router: Router, config: RoutingConfig | None, tokens_NW, vectors_ND: np.ndarray, labels_N: np.ndarray,
               the_plan: CvPlan, lengths: tuple[int, ...], cache: dict[str, np.ndarray],
               advance: Callable[[int], None] = lambda n: None, known: RoutingStats | None = None) -> CvResult:
    """The cv and val rows for every router the run has, at each of `lengths`.

    `router`: the run's router (`Router.load`: with its routing stage, if any); `config`: that stage's
    config (`routing_config`); `cache`: text -> embedding of prefixes already embedded (added to);
    `known`: the recall measurement's prefix vectors, reused for the windows it sampled.
    """
    fit_lengths = tuple(config.prefix_lengths) if config is not None else ()
    all_lengths = tuple(sorted({*lengths, *fit_lengths}))
    x_train = prefix_vectors(router, tokens_NW, vectors_ND, the_plan.train_ids, all_lengths, cache, advance, known)
    x_val = prefix_vectors(router, tokens_NW, vectors_ND, the_plan.val_ids, lengths, cache, advance, known)
    y_train, y_val = labels_N[the_plan.train_ids], labels_N[the_plan.val_ids]
    names = list(routers_of(router, router.routing))
    n = len(the_plan.train_ids)
    chosen = {r: {p: np.full(n, -1, dtype=np.int32) for p in lengths} for r in names}
    confidence = {r: {p: np.zeros(n) for p in lengths} for r in names}
    for _, fit, test in the_plan.folds():
        fitted = None
        if config is not None and len(fit):
            fitted, _ = fit_routing({p: x_train[p][fit] for p in fit_lengths}, y_train[fit], router, config,
                                    router.prefix_tokens)
        for name, r in routers_of(router, fitted).items():
            for p in lengths:
                routed = r.route_vectors(x_train[p][test], p)
                chosen[name][p][test] = routed.clusters
                confidence[name][p][test] = routed.probability
    rows = []
    for name in names:
        rows += [_row(name, p, "cv", chosen[name][p] == y_train, confidence[name][p]) for p in lengths]
    for name, r in routers_of(router, router.routing).items():
        for p in lengths:
            routed = r.route_vectors(x_val[p], p) if len(y_val) else None
            hits = routed.clusters == y_val if routed is not None else np.zeros(0, dtype=bool)
            rows.append(_row(name, p, "val", hits, routed.probability if routed is not None else np.zeros(0)))
    return CvResult(rows, the_plan, chosen)


def _row(router: str, p: int, split: str, hits_N: np.ndarray, confidence_N: np.ndarray) -> CvRow:
    n, k = len(hits_N), int(np.sum(hits_N))
    low, high = wilson(k, n)
    ece = expected_calibration_error(confidence_N, hits_N) if n else float("nan")
    return CvRow(router, p, split, n, _r(k / n if n else float("nan")), _r(low), _r(high), _r(ece))


def _r(x: float) -> float:
    return float("nan") if np.isnan(x) else round(float(x), 4)
