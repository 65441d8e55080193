"""Cluster cards: what each cluster holds, for a human deciding whether to spend compute on it.

Per cluster: sizes and share, top terms by class-based TF-IDF against the other clusters (see
`top_terms`),
exemplar snippets nearest the centroid, the domain histogram when labels exist, nearest clusters by
centroid cosine, dedup removals traced to the cluster of the kept document, balance figures, the
routing accuracy of its validation windows at the router's prefix length, and provenance. The
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

from splitlm.core.parts import read_table
from splitlm.curate.cluster.router import Router
from splitlm.curate.stats import centroid_cosines, nearest_clusters, ranked_labels, share_by_cluster, window_table
from splitlm.schemas.card import Balance, Card, Exemplar, Neighbour, Provenance
from splitlm.schemas.layout import cluster_name
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tables import ASSIGNMENTS, DUPLICATES
from splitlm.schemas.tokens import TokenArray

ALGORITHM = 3  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
# 2: `routing_accuracy_32` became `routing_accuracy` + `routing_prefix_tokens`; data_files point at the export

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
    k, tokens = router.k, TokenArray(run / "windows").tokens
    assign = read_table(run / "clusters", "assignments", ASSIGNMENTS)
    labels, dist = assign.column("cluster").to_numpy(), assign.column("distance").to_numpy()
    meta = window_table(run)
    shard_counts = StageManifest.read(run / "shards").counts["clusters"]
    members = [np.flatnonzero(labels == c) for c in range(k)]
    decode = router.tokenizer.decode_batch
    terms = top_terms([decode(tokens[_evenly(m, config.terms_sample)]) for m in members], config.top_terms)
    cos_KK = centroid_cosines(router.centroids_KD)
    removals = _dedup_removals(meta, labels, k, read_table(run / "dedup", "duplicates", DUPLICATES))
    accuracy = _routing_accuracy(router, tokens, labels, meta["split"] == "val", k, config.routing_sample)
    sizes = np.array([len(m) for m in members])
    cards = []
    for c in range(k):
        best = members[c][np.argsort(dist[members[c]], kind="stable")[: config.exemplars]]
        top = ranked_labels((meta["domain"][w], 1) for w in members[c])
        counts = shard_counts[str(c)]
        cards.append(Card(
            cluster=c, name=cluster_name(c, k), windows=int(sizes[c]),
            train_windows=counts["train_windows"], val_windows=counts["val_windows"],
            tokens=int(sizes[c]) * tokens.shape[1], share=float(sizes[c] / max(sizes.sum(), 1)),
            top_terms=terms[c],
            exemplars=[Exemplar(window_id=int(w), distance=round(float(dist[w]), 6), doc_ids=meta["doc_ids"][w][:8],
                                domain=meta["domain"][w], snippet=_snippet(decode([tokens[w]])[0], config.snippet_chars))
                       for w in best],
            domains=dict(top), top_domain=top[0][0] if top else None,
            top_domain_share=round(top[0][1] / sizes[c], 4) if top else None,
            nearest_clusters=[Neighbour(cluster=j, cosine=round(float(cos_KK[c, j]), 4))
                              for j in nearest_clusters(cos_KK, c)],
            dedup_removals=int(removals[c]), balance=_balance(sizes, c), embed_mode=router.spec.embedder.mode,
            routing_accuracy=accuracy[c][0], routing_prefix_tokens=router.prefix_tokens, routing_sample=accuracy[c][1],
            provenance=Provenance(**provenance),
        ))  # fmt: skip
    return cards


def _balance(sizes: np.ndarray, c: int) -> Balance:
    return Balance(size=int(sizes[c]), mean_size=float(sizes.mean()), ratio_to_mean=round(float(sizes[c] / sizes.mean()), 4),
                   run_max_min=round(float(sizes.max() / max(sizes.min(), 1)), 4))


def _dedup_removals(meta: dict, labels: np.ndarray, k: int, duplicates) -> np.ndarray:
    """Per cluster, documents removed as duplicates of a document whose first window lies there."""
    first_window: dict[str, int] = {}
    for w, docs in enumerate(meta["doc_ids"]):
        for d in docs:
            first_window.setdefault(d, w)
    out = np.zeros(k, dtype=np.int64)  # K, not the largest label: the last cluster may be empty
    for kept in duplicates.column("duplicate_of").to_pylist():
        if kept in first_window:
            out[labels[first_window[kept]]] += 1
    return out


def _routing_accuracy(router, tokens, labels, is_val, k, sample) -> list[tuple[float | None, int]]:
    """Per cluster: (share of sampled validation windows whose prefix routes to their cluster, sample size)."""
    ids = np.concatenate([_evenly(np.flatnonzero(is_val & (labels == c)), sample) for c in range(k)])
    if len(ids) == 0:
        return [(None, 0)] * k
    routed = router.route_tokens(tokens[ids, : router.prefix_tokens].tolist()).clusters
    return share_by_cluster(routed == labels[ids], labels[ids], k)
