"""The routing stage (`RUN/routing/`, after shards): calibrate the centroid router, fit the learned head.

Inputs: the shards' training windows only (every cluster's `train/index.parquet`; validation
windows never reach a fit), at most `max_windows` of them (a seeded sample; `CENTROID_WINDOWS` when
only temperatures are fitted), labelled with their shard's cluster. Each window's prefixes at
`prefix_lengths` tokens are cut and decoded to text exactly as `Router.route_tokens` does and
embedded with the run's embedder (each distinct text once). Then:

- per prefix length, the temperature of the centroid rule (`calibration.fit_temperature`);
- with `router="learned"`, the residual head (`heads.fit_linear` on the z-scored embedding with the
  centroid rule's logits `-s(x) / T0` as a fixed prior; T0 is the one temperature fitted over all
  lengths), fitted on every length's prefixes stacked, of 4/5 of the windows (blocked folds 1-4).
  On the other 1/5, which the head never saw: if its routed shares at the router's prefix length
  leave 0.5x..1.5x of 1/K (judged on at least 200 windows a cluster: on fewer, correcting the
  noise cost 1.3 points at 32 tokens on 20 Newsgroups), per-cluster logit biases
  (`heads.balance_biases`) are fitted and stored; then the head's own temperature per length.

Outputs: `routing.json` (`splitlm.schemas.routing.RoutingSpec`), learned only
`head.safetensors`, and `prefixes.safetensors`, the prefix embeddings (for `curate inspect`). Nothing here touches shards: the head only routes. Counts account for every
training window (used or left out of the sample) and every prefix (embedded or a repeat).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from splitlm.core.errors import ConfigError
from splitlm.core.hashing import sha256_file
from splitlm.curate.cluster.router import Router
from splitlm.curate.routing.calibration import fit_temperature
from splitlm.curate.routing.files import Routing, save_prefix_vectors, save_routing
from splitlm.curate.routing.folds import blocked_folds
from splitlm.curate.routing.heads import balance_biases, centroid_scores, fit_linear
from splitlm.curate.rows import take_rows
from splitlm.schemas.layout import RunLayout
from splitlm.schemas.routing import ROUTERS, HeadSpec, RoutingSpec
from splitlm.schemas.tokens import TokenArray

ALGORITHM = 2  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
EMBED_BLOCK = 1024  # distinct prefix texts per embedder call
READ_BLOCK = 2048  # windows read per token slice
CENTROID_WINDOWS = 1_000  # windows sampled when only temperatures are fitted (one scalar per length)
SHARE_RANGE = (0.5, 1.5)  # routed share per cluster, in units of 1/K, left alone by the balance biases
BALANCE_MIN_PER_CLUSTER = 200  # held-out windows a cluster below which shares are noise: no balance biases


@dataclass(frozen=True)
class RoutingConfig:
    router: str = "centroid"
    """centroid (the clusters' biased nearest-centroid rule) or learned (a head fitted on top of it)."""
    max_windows: int = 20_000
    """Training windows sampled for the fit (the centroid router's temperatures use at most
    `CENTROID_WINDOWS` of them: K temperatures need far fewer windows than a head, and embedding
    prefixes is the stage's cost: ~5 MiniLM texts a window)."""
    prefix_lengths: tuple[int, ...] = (8, 16, 32, 64, 128)
    """Prefix lengths (tokens) fitted; routes at other lengths use the nearest in log P."""
    seed: int = 0
    l2: float = 1.0
    """The head's L2 penalty on z-scored features (towards the centroid rule), at 10,000 prefixes.

    The penalty used is `l2 * 10_000 / prefixes`: a fit on fewer prefixes leans harder on the
    centroid rule (blocked 5-fold CV chose ~0.44 on 22.5k prefixes of 20 Newsgroups K=16 and ~6 on
    1.6k prefixes of the demo corpus, both this same 1.0 at 10k)."""

    def __post_init__(self):
        if self.router not in ROUTERS:
            raise ConfigError(f"--router {self.router!r}: choose {' or '.join(ROUTERS)}")
        if self.max_windows < 1:
            raise ConfigError(f"routing max_windows {self.max_windows}: must be >= 1")
        lengths = tuple(self.prefix_lengths)
        if not lengths or min(lengths) < 1 or list(lengths) != sorted(set(lengths)):
            raise ConfigError(f"routing prefix_lengths {lengths}: give ascending distinct token counts >= 1")
        object.__setattr__(self, "prefix_lengths", lengths)


def training_windows(run: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(window ids int64 sorted, their clusters int32) of every shard's training split."""
    layout = RunLayout(run)
    ids, labels = [], []
    for c in range(k):
        w = pq.read_table(layout.shard(c, k, "train") / "index.parquet", columns=["window_id"]).column(0)
        ids.append(w.to_numpy().astype(np.int64))
        labels.append(np.full(len(w), c, dtype=np.int32))
    ids_N, labels_N = np.concatenate(ids), np.concatenate(labels)
    order = np.argsort(ids_N, kind="stable")
    return ids_N[order], labels_N[order]


def prefix_vectors(router: Router, tokens, ids: np.ndarray, lengths: tuple[int, ...], advance=lambda n: None
                   ) -> tuple[dict[int, np.ndarray], int, int]:
    """({P: [N, D] float32 embeddings of the windows' P-token prefixes}, prefixes, distinct texts embedded)."""
    texts: dict[int, list[str]] = {p: [] for p in lengths}
    for lo in range(0, len(ids), READ_BLOCK):
        rows = take_rows(tokens, ids[lo : lo + READ_BLOCK])
        for p in lengths:
            texts[p] += router.tokenizer.decode_batch([list(r[:p]) for r in rows])
    distinct = sorted({t for p in lengths for t in texts[p]}, key=lambda t: (-len(t), t))
    index = {t: i for i, t in enumerate(distinct)}
    vectors = np.zeros((len(distinct), router.embedder.dimension), dtype=np.float32)
    for lo in range(0, len(distinct), EMBED_BLOCK):
        vectors[lo : lo + EMBED_BLOCK] = router.embedder.encode(distinct[lo : lo + EMBED_BLOCK])
        advance(min(EMBED_BLOCK, len(distinct) - lo))
    out = {p: vectors[[index[t] for t in texts[p]]] for p in lengths}
    return out, len(ids) * len(lengths), len(distinct)


def shares(chosen_N: np.ndarray, k: int) -> np.ndarray:
    """Routed share per cluster in units of 1/K."""
    return np.bincount(chosen_N, minlength=k) / max(len(chosen_N), 1) * k


def fit_routing(x: dict[int, np.ndarray], labels_N: np.ndarray, router: Router, config: RoutingConfig,
                prefix_tokens: int) -> tuple[Routing, dict[str, Any]]:
    """The routing (spec + head) fitted on prefix embeddings `x` of training windows labelled `labels_N`."""
    lengths, k = config.prefix_lengths, router.k
    c_KD, b_K = router.centroids_KD, router.biases_K
    scores = {p: centroid_scores(x[p], c_KD, b_K) for p in lengths}
    counts: dict[str, Any] = {"train_accuracy_centroid": {
        str(p): round(float((scores[p].argmin(1) == labels_N).mean()), 4) for p in lengths}}
    temps = [fit_temperature(scores[p], labels_N) for p in lengths]
    head, balance_K, head_spec = None, None, None
    if config.router == "learned":
        start = time.perf_counter()
        fit_N, held_N = _fit_and_calibration_rows(len(labels_N), config.seed)
        x_MD = np.concatenate([x[p][fit_N] for p in lengths])
        s_MK = np.concatenate([scores[p][fit_N] for p in lengths])
        y_M = np.tile(labels_N[fit_N], len(lengths))
        t0 = fit_temperature(s_MK, y_M)
        l2 = config.l2 * 10_000 / len(y_M)
        head = fit_linear(x_MD, y_M, k, l2=l2, prior_NK=-s_MK / t0)
        fit_seconds = time.perf_counter() - start
        logits = {p: head.logits(x[p][held_N], -scores[p][held_N] / t0) for p in lengths}
        y_H = labels_N[held_N]
        at = lengths[int(np.argmin(np.abs(np.log(lengths) - np.log(prefix_tokens))))]
        share_K = shares(logits[at].argmax(1), k)
        enough = len(y_H) >= BALANCE_MIN_PER_CLUSTER * k  # shares of a few windows per cluster are noise
        balanced = enough and bool(share_K.min() < SHARE_RANGE[0] or share_K.max() > SHARE_RANGE[1])
        balance_K = (balance_biases(logits[at]) if balanced else np.zeros(k)).astype(np.float32)
        head_temps = [fit_temperature(-(logits[p] + balance_K), y_H) for p in lengths]
        head_spec = HeadSpec(features=x_MD.shape[1], k=k, l2=l2, prior_temperature=t0,
                             temperatures=head_temps, balanced=balanced)
        counts.update({
            "head_rows": len(y_M), "head_fit_seconds": round(fit_seconds, 3),
            "calibration_windows": len(y_H),
            "calibration_accuracy_centroid": {str(p): round(float((scores[p][held_N].argmin(1) == y_H).mean()), 4)
                                              for p in lengths},
            "calibration_accuracy_learned": {str(p): round(float(((logits[p] + balance_K).argmax(1) == y_H).mean()), 4)
                                             for p in lengths},
            "calibration_share_learned": {"prefix_tokens": at, "min": round(float(share_K.min()), 3),
                                          "max": round(float(share_K.max()), 3)}})  # fmt: skip
    spec = RoutingSpec(router=config.router, clusters_router_sha256="", prefix_lengths=list(lengths),
                       centroid_temperatures=temps, windows=len(labels_N), seed=config.seed, head=head_spec)
    return Routing(spec, head, balance_K), counts


def _fit_and_calibration_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows the head is fitted on, rows its temperatures and balance are fitted on): blocked folds 1-4 and 0.

    A head is more sure of the rows it was fitted on than of new ones, so its temperatures come
    from windows it never saw (blocks of consecutive windows, `folds.blocked_folds`). With too
    few windows for both, both use all rows.
    """
    fold_N = blocked_folds(n, folds=5, seed=seed)
    fit_N, held_N = np.flatnonzero(fold_N != 0), np.flatnonzero(fold_N == 0)
    if len(fit_N) == 0 or len(held_N) == 0:
        return np.arange(n), np.arange(n)
    return fit_N, held_N


def write_routing(run: Path, out: Path, config: RoutingConfig, advance=lambda n: None) -> dict[str, Any]:
    """Fit and write the routing of `run` into `out`; returns the stage's counts."""
    layout = RunLayout(run)
    router = Router.load(run, routing=False)  # the clusters' rule alone: an old RUN/routing is what we replace
    ids_N, labels_N = training_windows(run, router.k)
    pool = len(ids_N)
    most = config.max_windows if config.router == "learned" else min(config.max_windows, CENTROID_WINDOWS)
    if pool > most:
        keep = np.sort(np.random.default_rng(config.seed).choice(pool, most, replace=False))
        ids_N, labels_N = ids_N[keep], labels_N[keep]
    start = time.perf_counter()
    x, prefixes, distinct = prefix_vectors(router, TokenArray(run / "windows").tokens, ids_N,
                                           config.prefix_lengths, advance)
    embed_seconds = time.perf_counter() - start
    routing, fit_counts = fit_routing(x, labels_N, router, config, router.prefix_tokens)
    spec = routing.spec.model_copy(update={"clusters_router_sha256": sha256_file(layout.router_tensors)})
    save_routing(out, Routing(spec, routing.head, routing.balance_K))
    save_prefix_vectors(out, ids_N, x)
    return {"router": config.router, "windows_train": pool, "windows_used": len(ids_N),
            "windows_not_sampled": pool - len(ids_N), "prefixes": prefixes, "texts_embedded": distinct,
            "prefixes_repeated": prefixes - distinct, "embed_seconds": round(embed_seconds, 3),
            "centroid_temperatures": dict(zip(map(str, config.prefix_lengths), spec.centroid_temperatures)),
            **fit_counts}
