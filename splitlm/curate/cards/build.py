"""Cluster cards: what each cluster holds, for a human deciding whether to spend compute on it.

Per cluster: sizes and share, top terms by class-based TF-IDF against the other clusters (see
`top_terms`),
exemplar snippets nearest the centroid, the domain histogram when labels exist, nearest clusters by
centroid cosine, dedup removals traced to the cluster of the kept document, balance figures, the
routing accuracy of its validation windows at the router's prefix length (the run's router, and
each router the run has: centroid, and learned when it has a head), and provenance. The
statistics come from `splitlm.curate.stats`, which `curate inspect` shares. Terms are counted on a
deterministic sample of `terms_sample` windows per cluster. Outputs: `cluster-XX.json`,
`cluster-XX.md` (YAML front matter in the style of Hugging Face dataset cards) and `index.md`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.parts import iter_batches
from splitlm.curate.cluster.router import Router
from splitlm.curate.inspect.routing_cv import routers_of
from splitlm.curate.rows import take_rows
from splitlm.curate.stats import centroid_cosines, nearest_clusters, ranked_labels, share_by_cluster
from splitlm.curate.window_columns import WindowColumns, first_windows, read_doc_ids, read_window_columns
from splitlm.schemas.card import Balance, Card, Exemplar, Neighbour, Provenance
from splitlm.schemas.layout import cluster_name
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tables import ASSIGNMENTS, DUPLICATES
from splitlm.schemas.tokens import TokenArray

ALGORITHM = 4  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
# 2: `routing_accuracy_32` became `routing_accuracy` + `routing_prefix_tokens`; data_files point at the export
# 4: `routing_accuracy_by_router`: each router's share on the same validation windows

_WORD = re.compile(r"[^\W\d_]{3,24}")


@dataclass(frozen=True)
class CardsConfig:
    top_terms: int = 12
    exemplars: int = 4
    snippet_chars: int = 320
    terms_sample: int = 128
    """Windows per cluster whose text is counted for top terms."""
    routing_sample: int = 256
    """Validation windows per cluster routed by their prefix (the router's length) for the card's accuracy."""


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def _evenly(ids: np.ndarray, n: int) -> np.ndarray:
    return ids if len(ids) <= n else ids[np.linspace(0, len(ids) - 1, n).astype(int)]


def top_terms(texts_by_cluster: list[list[str]], n: int) -> list[list[str]]:
    """Per cluster, terms ranked by p_c(w) * log(p_c(w) / p_rest(w)).

    A class-based TF-IDF against the rest: the term's frequency in the cluster, weighted by how much
    more frequent it is there than in the other clusters. Terms spread evenly over the corpus (e-mail
    headers, boilerplate) score ~0 even when they are frequent, unlike BERTopic's log(1 + A / f).
    """
    stop = _stop_words()
    counts = [Counter(w for t in texts for w in _WORD.findall(t.lower()) if w not in stop)
              for texts in texts_by_cluster]
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    words = sum(total.values())
    out = []
    for c in counts:
        size = max(sum(c.values()), 1)
        rest = max(words - size, 1)
        score = {w: (f / size) * math.log((f / size) / ((total[w] - f + 1) / rest)) for w, f in c.items() if f >= 2}
        out.append([w for w, v in sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n] if v > 0])
    return out


def _snippet(text: str, n: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1].rstrip() + "…"


def build_cards(run: Path, config: CardsConfig, provenance: dict[str, Any], router=None) -> list[Card]:
    router = router or Router.load(run)
    k, tokens = router.k, TokenArray(run / "windows")
    labels, dist = read_assignments(run)
    table = read_window_columns(run)
    shard_counts = StageManifest.read(run / "shards").counts["clusters"]
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels, minlength=k)
    members = np.split(order, np.cumsum(sizes)[:-1])  # each cluster's windows, in window-id order
    decode = router.tokenizer.decode_batch
    terms = top_terms([decode(take_rows(tokens, _evenly(m, config.terms_sample))) for m in members], config.top_terms)
    cos_KK = centroid_cosines(router.centroids_KD)
    removals = _dedup_removals(table, labels, k, iter_batches(run / "dedup", "duplicates", DUPLICATES,
                                                               columns=["duplicate_of"]))
    by_router = _routing_accuracy(router, tokens, labels, table.is_val_N, k, config.routing_sample)
    accuracy = by_router[router.kind]  # the run's own router
    domains_KL = _domain_counts(table, labels, k)
    best = [m[np.argsort(dist[m], kind="stable")[: config.exemplars]] for m in members]
    doc_ids = read_doc_ids(run, np.concatenate(best)) if k else {}
    cards = []
    for c in range(k):
        top = ranked_labels((table.domains[j], int(n)) for j, n in enumerate(domains_KL[c]) if n)
        counts = shard_counts[str(c)]
        snippets = decode(take_rows(tokens, best[c])) if len(best[c]) else []
        cards.append(Card(
            cluster=c, name=cluster_name(c, k), windows=int(sizes[c]),
            train_windows=counts["train_windows"], val_windows=counts["val_windows"],
            tokens=int(sizes[c]) * (tokens.seq_len + 1), share=float(sizes[c] / max(sizes.sum(), 1)),
            top_terms=terms[c],
            exemplars=[Exemplar(window_id=int(w), distance=round(float(dist[w]), 6), doc_ids=doc_ids[int(w)][:8],
                                domain=label, snippet=_snippet(text, config.snippet_chars))
                       for w, label, text in zip(best[c], table.domain_labels(best[c]), snippets)],
            domains=dict(top), top_domain=top[0][0] if top else None,
            top_domain_share=round(top[0][1] / sizes[c], 4) if top else None,
            nearest_clusters=[Neighbour(cluster=j, cosine=round(float(cos_KK[c, j]), 4))
                              for j in nearest_clusters(cos_KK, c)],
            dedup_removals=int(removals[c]), balance=_balance(sizes, c), embed_mode=router.spec.embedder.mode,
            routing_accuracy=accuracy[c][0], routing_prefix_tokens=router.prefix_tokens, routing_sample=accuracy[c][1],
            routing_accuracy_by_router={name: acc[c][0] for name, acc in by_router.items()},
            provenance=Provenance(**provenance),
        ))  # fmt: skip
    return cards


def read_assignments(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(labels int32, distances float32) of every window, read part by part."""
    labels, dist = [], []
    for batch in iter_batches(run / "clusters", "assignments", ASSIGNMENTS, columns=["cluster", "distance"],
                              batch_size=65536):
        labels.append(batch.column(0).to_numpy().astype(np.int32))
        dist.append(batch.column(1).to_numpy().astype(np.float32))
    return (np.concatenate(labels), np.concatenate(dist)) if labels else (np.zeros(0, np.int32), np.zeros(0, np.float32))


def _domain_counts(table: WindowColumns, labels: np.ndarray, k: int) -> np.ndarray:
    """int64 [K, L]: windows per cluster and domain label (unlabelled windows left out)."""
    n_labels = len(table.domains)
    has = table.domain_N >= 0
    flat = labels[has].astype(np.int64) * n_labels + table.domain_N[has]
    return np.bincount(flat, minlength=k * n_labels).reshape(k, n_labels)


def _balance(sizes: np.ndarray, c: int) -> Balance:
    return Balance(size=int(sizes[c]), mean_size=float(sizes.mean()), ratio_to_mean=round(float(sizes[c] / sizes.mean()), 4),
                   run_max_min=round(float(sizes.max() / max(sizes.min(), 1)), 4))


def _dedup_removals(table: WindowColumns, labels: np.ndarray, k: int, duplicates) -> np.ndarray:
    """Per cluster, documents removed as duplicates of a document whose first window lies there.

    `duplicates`: record batches (or tables) whose first column is `duplicate_of`.
    """
    first_D = first_windows(table)
    out = np.zeros(k, dtype=np.int64)  # K, not the largest label: the last cluster may be empty
    for batch in duplicates:
        codes = table.codes_of(batch.column(0))
        out += np.bincount(labels[first_D[codes[codes >= 0]]], minlength=k)
    return out


def _routing_accuracy(router, tokens, labels, is_val, k, sample) -> dict[str, list[tuple[float | None, int]]]:
    """Per router the run has (centroid; learned with a learned head), per cluster: (share of the cluster's
    sampled validation windows whose `router.prefix_tokens`-token prefix routes to it, sample size).

    Validation windows, not inspect's cross-validated predictions: the cards stage runs before
    inspect. Every router routes the same prefixes, embedded once (as `Router.route_tokens` does).
    """
    routers = routers_of(router, router.routing)
    ids = np.concatenate([_evenly(np.flatnonzero(is_val & (labels == c)), sample) for c in range(k)])
    if len(ids) == 0:
        return {name: [(None, 0)] * k for name in routers}
    n = router.prefix_tokens
    x_SD = router.embedder.encode(router.tokenizer.decode_batch(take_rows(tokens, ids)[:, :n].tolist()))
    return {name: share_by_cluster(r.route_vectors(x_SD, n).clusters == labels[ids], labels[ids], k)
            for name, r in routers.items()}
