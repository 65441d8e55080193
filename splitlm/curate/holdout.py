"""Validation hold-out per cluster: a cap on documents, and a floor on windows.

The windows stage holds out validation documents before packing, so train and validation never
share a document. Clustering then deals those windows out unevenly, which leaves two jobs:
- `cap`: keep at most `--val-max-docs` validation documents per cluster (the paper's 10,000);
- `top_up`: give every cluster at least `--val-min-windows` validation windows, so training never
  meets a cluster it cannot evaluate. Windows move from the cluster's own training set, fewest
  shared documents first. A moved window's documents become validation documents, so every other
  training window holding one of them is dropped (never trained on) and counted.
A cluster too small to give up that many windows and still keep one training window is an error
here, at curation time, naming the cluster and the flags that fix it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from splitlm.core.errors import ConfigError


def cap(val_W: np.ndarray, doc_ids: list[list[str]], most: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, overflow) window ids: keep windows in order while their documents fit under `most`."""
    docs: set[str] = set()
    for i, w in enumerate(val_W):
        new = set(doc_ids[w]) - docs
        if len(docs) + len(new) > most:
            return val_W[:i], val_W[i:]
        docs |= new
    return val_W, val_W[:0]


def top_up(train: dict[int, np.ndarray], val: dict[int, np.ndarray], doc_ids: list[list[str]], minimum: int,
           names: dict[int, str]) -> dict:
    """Move training windows to validation until each cluster holds `minimum`; edits `train`, `val` in place.

    Returns {"moved": {cluster: windows}, "dropped": windows that shared a document with a moved one}.
    """
    short = [c for c in sorted(val) if len(val[c]) < minimum]
    if not short:
        return {"moved": {}, "dropped": 0}
    holders: dict[str, list[int]] = defaultdict(list)  # document -> training windows holding it
    for ids in train.values():
        for w in ids.tolist():
            for d in doc_ids[w]:
                holders[d].append(w)
    removed: set[int] = set()
    moved: dict[str, int] = {}
    dropped = 0
    for c in short:
        need = minimum - len(val[c])
        picked = _pick(train[c], need, doc_ids, holders, removed)
        for w in picked:
            removed.add(w)
            for d in doc_ids[w]:
                sharers = [x for x in holders[d] if x not in removed]
                removed.update(sharers)
                dropped += len(sharers)
        left = sum(1 for w in train[c].tolist() if w not in removed)
        if len(picked) < need or left < 1:
            raise ConfigError(
                f"{names[c]} holds {len(val[c])} validation and {len(train[c])} training windows: too few to "
                f"hold out --val-min-windows {minimum} and still train; lower --k or --val-min-windows, or add data")
        val[c] = np.sort(np.concatenate([val[c], np.array(picked, dtype=val[c].dtype)]))
        moved[str(c)] = len(picked)
    for c, ids in train.items():
        train[c] = ids[~np.isin(ids, np.fromiter(removed, dtype=np.int64, count=len(removed)))]
    return {"moved": moved, "dropped": dropped}


def _pick(ids: np.ndarray, need: int, doc_ids: list[list[str]], holders: dict, removed: set[int]) -> list[int]:
    """Up to `need` windows of `ids`, those sharing documents with the fewest other windows first."""
    def sharers(w: int) -> int:
        return len({x for d in doc_ids[w] for x in holders[d]}) - 1

    order = sorted((w for w in ids.tolist() if w not in removed), key=lambda w: (sharers(w), w))
    picked: list[int] = []
    taken: set[int] = set()
    for w in order:
        if len(picked) == need:
            break
        if w in taken:
            continue
        picked.append(w)
        taken.update(x for d in doc_ids[w] for x in holders[d])  # a sharer of a pick is dropped, not picked
    return picked
