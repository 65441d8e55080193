"""Prefix routing: how much of a window its first P tokens give away (paper Table 5, App. D).

On a seeded sample of N windows, for each prefix length P (the window's first P tokens, decoded
to text as the router does):
- R@1 / R@5 (Table 5): rank the N stored full-window embeddings by cosine to the prefix's
  embedding; a hit when the window's own vector is first / in the top 5. Ties count for the
  prefix (strictly greater scores only push it down).
- route top-1: the prefix routes (the router's biased rule, `Router.assign_vectors`) to the
  window's own cluster; top-3: the own cluster is among the 3 best biased scores; centroid ECE: the
  expected calibration error (10 bins) of the rule's probability for its choice, at the temperature
  the routing stage fitted for P (T = 1 on runs without one);
- learned top-1 / top-3 / ECE: the same for the run's learned router (`--router learned`), if any.
Cost: embedding the prefixes dominates. All distinct prefix texts over all P are embedded once,
longest first in blocks so the embedder's length-sorted batches pad little; short prefixes repeat
a lot (mail headers, code preambles), so P <= 4 costs almost nothing. A prefix whose model input
(the run's embedder's word pieces, `load.model_pieces`) is the window's own is the very input the
stored vector was computed from: that vector is reused instead of embedding it again. In
`truncate` mode the model reads only the first 254 word pieces, so this saves about half the work
at P = 256 on 2,048-token windows; in `mean` mode only prefixes that are the whole window qualify.
Texts the routing stage already embedded (its training prefixes, `RUN/routing/prefixes.safetensors`)
are read back, not embedded again. R@k needs an N x N similarity, done in row blocks so memory
stays at block x N.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from splitlm.curate.embed.load import model_pieces
from splitlm.curate.routing.calibration import expected_calibration_error
from splitlm.curate.routing.decide import router_scores, top2_probabilities
from splitlm.curate.routing.heads import centroid_scores
from splitlm.curate.rows import take_rows
from splitlm.schemas.routing import temperature_at

BLOCK = 1024  # prefixes per similarity block and per embedding call


@dataclass(frozen=True)
class PrefixRow:
    prefix_tokens: int
    windows: int  # N, the retrieval pool size
    distinct_prefixes: int
    r_at_1: float
    r_at_5: float
    route_top1: float
    route_top3: float
    centroid_ece: float | None = None  # ECE (10 bins) of the centroid rule's probabilities (None: not measured)
    learned_top1: float | None = None  # the learned router's top-1 / top-3 / ECE; None when the run has none
    learned_top3: float | None = None
    learned_ece: float | None = None


@dataclass(frozen=True, eq=False)
class RoutingStats:
    rows: list[PrefixRow]
    window_ids: np.ndarray  # int64 [N], the sample, sorted
    hits_PN: np.ndarray  # bool [len(rows), N]: top-1 routing hit per prefix length and window
    seconds_embedding: float
    texts_embedded: int
    vectors_reused: int  # prefixes that are the stored vector's exact model input
    texts_from_routing: int  # distinct texts whose embedding the routing stage had stored
    embedded: dict[str, np.ndarray] = field(default_factory=dict)  # text -> embedding, for reuse (`routing_cv`)
    prefix_SD: dict[int, np.ndarray] = field(default_factory=dict)  # P -> [N, D] the sample's prefix vectors

    def row(self, p: int) -> PrefixRow | None:
        return next((r for r in self.rows if r.prefix_tokens == p), None)

    def hits(self, p: int) -> np.ndarray:
        return self.hits_PN[[r.prefix_tokens for r in self.rows].index(p)]


def sample_windows(is_val_N: np.ndarray, split: str, n: int, seed: int) -> np.ndarray:
    """Sorted ids of up to n windows of `split` (val, train or all), drawn with `seed`; N >= 1 is the caller's check."""
    is_val_N = np.asarray(is_val_N, dtype=bool)
    pool = np.arange(len(is_val_N)) if split == "all" else np.flatnonzero(is_val_N == (split == "val"))
    if len(pool) <= n:
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, n, replace=False))


def prefix_routing(router, tokens_NW: np.ndarray, vectors_ND: np.ndarray, labels_N: np.ndarray,
                   window_ids: np.ndarray, prefix_lengths: tuple[int, ...],
                   advance: Callable[[int], None] = lambda n: None,
                   known: dict[str, np.ndarray] | None = None) -> RoutingStats:
    """`known`: text -> embedding already computed by the run's embedder (the routing stage's
    training prefixes, `routing.files.stored_prefix_texts`); those texts are not embedded again."""
    rows_SW = take_rows(tokens_NW, window_ids)  # a bounded sample: read as row slices
    own_S = labels_N[window_ids]
    full_SD = _unit(take_rows(vectors_ND, window_ids, np.float32))
    texts = {p: router.tokenizer.decode_batch(rows_SW[:, :p]) for p in prefix_lengths}
    start = time.perf_counter()
    same = _same_model_input(router, rows_SW, texts)
    known = known or {}
    todo = [t for p in prefix_lengths for t, s in zip(texts[p], same[p]) if not s]
    stored = {t: known[t] for t in todo if t in known}
    vectors = {**stored, **_embed_distinct(router.embedder, [t for t in todo if t not in stored], advance)}
    seconds = time.perf_counter() - start
    rows, hits, prefix_SD = [], [], {}
    for p in prefix_lengths:
        q_SD = np.stack([full_SD[i] if same[p][i] else vectors[t] for i, t in enumerate(texts[p])])
        prefix_SD[p] = q_SD
        rank_S = _own_rank(q_SD, full_SD)
        top1_S = router.assign_vectors(q_SD).clusters == own_S
        # The router settles near-ties in float64; OR-ing its top-1 in keeps top-3 >= top-1 exactly.
        top3_S = top1_S | (router.top_clusters(q_SD, 3) == own_S[:, None]).any(1)
        centroid_conf_S = _centroid_confidence(router, q_SD, p)
        learned = _learned(router, q_SD, p, own_S)
        rows.append(PrefixRow(p, len(window_ids), len(set(texts[p])), _mean(rank_S < 1), _mean(rank_S < 5),
                              _mean(top1_S), _mean(top3_S), _ece(centroid_conf_S, top1_S), *learned))
        hits.append(top1_S)
    return RoutingStats(rows, window_ids, np.array(hits, dtype=bool).reshape(len(rows), len(window_ids)), seconds,
                        len(vectors) - len(stored), int(sum(s.sum() for s in same.values())), len(stored), vectors,
                        prefix_SD)


def prefix_vectors(router, tokens_NW: np.ndarray, vectors_ND: np.ndarray, window_ids: np.ndarray,
                   prefix_lengths: tuple[int, ...], embedded: dict[str, np.ndarray],
                   advance: Callable[[int], None] = lambda n: None, known: RoutingStats | None = None
                   ) -> dict[int, np.ndarray]:
    """{P: [S, D] float32 embedding of each window's P-token prefix}, as `prefix_routing` computes them.

    Texts already in `embedded` (text -> vector) are not embedded again; new ones are added to it.
    Windows of `known` (a `prefix_routing` result; sorted ids) take its vectors, at the lengths it has.
    """
    if known is not None and len(known.window_ids) and len(window_ids):
        pos_S = np.minimum(np.searchsorted(known.window_ids, window_ids), len(known.window_ids) - 1)
        hit_S = known.window_ids[pos_S] == window_ids
        have = tuple(p for p in prefix_lengths if p in known.prefix_SD)
        rest = prefix_vectors(router, tokens_NW, vectors_ND, window_ids[~hit_S], prefix_lengths, embedded, advance)
        todo = prefix_vectors(router, tokens_NW, vectors_ND, window_ids[hit_S],
                              tuple(p for p in prefix_lengths if p not in have), embedded, advance)
        out = {}
        for p in prefix_lengths:
            out[p] = np.empty((len(window_ids), vectors_ND.shape[1]), dtype=np.float32)
            out[p][~hit_S] = rest[p]
            out[p][hit_S] = known.prefix_SD[p][pos_S[hit_S]] if p in have else todo[p]
        return out
    if len(window_ids) == 0 or not prefix_lengths:
        return {p: np.zeros((0, vectors_ND.shape[1]), dtype=np.float32) for p in prefix_lengths}
    rows_SW = take_rows(tokens_NW, window_ids)
    full_SD = _unit(take_rows(vectors_ND, window_ids, np.float32))
    texts = {p: router.tokenizer.decode_batch(rows_SW[:, :p]) for p in prefix_lengths}
    same = _same_model_input(router, rows_SW, texts)
    todo = [t for p in prefix_lengths for t, s in zip(texts[p], same[p]) if not s and t not in embedded]
    embedded.update(_embed_distinct(router.embedder, todo, advance))
    return {p: np.stack([full_SD[i] if same[p][i] else embedded[t] for i, t in enumerate(texts[p])]).astype(np.float32)
            for p in prefix_lengths}


def _centroid_confidence(router, q_SD: np.ndarray, p: int) -> np.ndarray:
    """The centroid rule's probability of its own choice, at its temperature for P (1 when uncalibrated)."""
    routing = router.routing
    t = temperature_at(routing.spec.prefix_lengths, routing.spec.centroid_temperatures, p) if routing else 1.0
    scores_SK = centroid_scores(q_SD, router.centroids_KD, router.biases_K)
    return top2_probabilities(scores_SK, router.assign_vectors(q_SD).clusters, t)[0]


def _learned(router, q_SD: np.ndarray, p: int, own_S: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(top-1, top-3, ECE) of the run's learned router on these prefixes; Nones when it has none."""
    if router.kind != "learned":
        return None, None, None
    chosen = router.route_vectors(q_SD, p)
    scores_SK, _ = router_scores(q_SD, router.centroids_KD, router.biases_K, router.routing)
    top1_S = chosen.clusters == own_S
    top3_S = top1_S | (np.argsort(scores_SK, axis=1, kind="stable")[:, :3] == own_S[:, None]).any(1)
    return _mean(top1_S), _mean(top3_S), _ece(chosen.probability, top1_S)


def _ece(confidence_S: np.ndarray, hits_S: np.ndarray) -> float:
    return round(expected_calibration_error(confidence_S, hits_S), 4) if len(hits_S) else float("nan")


def _same_model_input(router, rows_SW: np.ndarray, texts: dict[int, list[str]]) -> dict[int, np.ndarray]:
    """Per P, which prefixes feed the run's embedder the very word pieces the window's stored vector came from.

    In `truncate` mode, true for a long prefix that covers the window's first `max_pieces - 2`
    pieces; in any mode, for a prefix that is the whole window (P >= window length).
    """
    embedder = router.embedder
    window = model_pieces(embedder, router.tokenizer.decode_batch(rows_SW))
    # word-piece tokenising is cheap next to the model, so every prefix is checked
    return {p: np.array([h == w for h, w in zip(model_pieces(embedder, batch), window)], dtype=bool)
            for p, batch in texts.items()}


def _embed_distinct(embedder, texts: list[str], advance: Callable[[int], None]) -> dict[str, np.ndarray]:
    """text -> unit vector, each distinct text embedded once."""
    distinct = sorted(set(texts), key=lambda t: (-len(t), t))  # deterministic blocks, similar lengths together
    out: dict[str, np.ndarray] = {}
    for lo in range(0, len(distinct), BLOCK):
        block = distinct[lo : lo + BLOCK]
        out.update(zip(block, embedder.encode(block)))
        advance(len(block))
    return out


def _own_rank(q_SD: np.ndarray, full_SD: np.ndarray) -> np.ndarray:
    """Per prefix, how many full windows score strictly higher than its own window."""
    rank_S = np.empty(len(q_SD), dtype=np.int64)
    for lo in range(0, len(q_SD), BLOCK):
        sims_BS = q_SD[lo : lo + BLOCK] @ full_SD.T
        own_B = sims_BS[np.arange(len(sims_BS)), np.arange(lo, lo + len(sims_BS))]
        rank_S[lo : lo + len(sims_BS)] = (sims_BS > own_B[:, None]).sum(1)
    return rank_S


def _unit(x_ND: np.ndarray) -> np.ndarray:
    return x_ND / np.maximum(np.linalg.norm(x_ND, axis=1, keepdims=True), 1e-12)


def _mean(hits_S: np.ndarray) -> float:
    return round(float(hits_S.mean()), 4) if len(hits_S) else float("nan")
