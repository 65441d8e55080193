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
Both work on window ids (int64 arrays) and the columnar window table
(`splitlm.curate.window_columns.WindowColumns`): documents are integer codes, sets are sorted arrays.
"""

from __future__ import annotations

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.curate.window_columns import WindowColumns


def cap(val_W: np.ndarray, table: WindowColumns, most: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, overflow) window ids: keep windows in order while their documents fit under `most`."""
    val_W = np.asarray(val_W, dtype=np.int64)
    owner, codes = table.docs_of(val_W)
    _, first = np.unique(codes, return_index=True)  # each document's first piece among these windows
    new_W = np.bincount(owner[first], minlength=len(val_W))
    cut = int(np.searchsorted(np.cumsum(new_W), most, side="right"))  # first window taking it past `most`
    return val_W[:cut], val_W[cut:]


def touching(ids_W: np.ndarray, docs_D: np.ndarray, table: WindowColumns) -> np.ndarray:
    """bool per window of ids_W: holds one of the (sorted, distinct) document codes docs_D."""
    owner, codes = table.docs_of(ids_W)
    return np.bincount(owner[np.isin(codes, docs_D)], minlength=len(ids_W)) > 0


class _Holders:
    """Which training windows hold each document (windows sorted within each document)."""

    def __init__(self, train_T: np.ndarray, table: WindowColumns):
        owner, codes = table.docs_of(train_T)
        order = np.lexsort((train_T[owner], codes))
        self.codes, self.windows = codes[order], train_T[owner][order]
        self.table = table

    def _ranges(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.searchsorted(self.codes, codes, "left"), np.searchsorted(self.codes, codes, "right")

    def of(self, w: int) -> np.ndarray:
        """Distinct training windows sharing a document with window w (w included when it trains)."""
        lo, hi = self._ranges(self.table.docs_of(np.array([w]))[1])
        return np.unique(np.concatenate([self.windows[a:b] for a, b in zip(lo, hi)] or [np.zeros(0, np.int64)]))

    def counts(self, ids_W: np.ndarray) -> np.ndarray:
        """Per window of ids_W, how many distinct training windows share a document with it."""
        owner, codes = self.table.docs_of(ids_W)
        lo, hi = self._ranges(codes)
        lens = hi - lo
        pair_owner = np.repeat(owner, lens)
        within = np.arange(len(pair_owner), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        other = self.windows[np.repeat(lo, lens) + within]
        pairs = np.unique(np.stack([pair_owner, other], axis=1), axis=0) if len(other) else np.zeros((0, 2), np.int64)
        return np.bincount(pairs[:, 0], minlength=len(ids_W))


def top_up(train: dict[int, np.ndarray], val: dict[int, np.ndarray], table: WindowColumns, minimum: int,
           names: dict[int, str]) -> dict:
    """Move training windows to validation until each cluster holds `minimum`; edits `train`, `val` in place.

    Returns {"moved": {cluster: windows}, "dropped": windows that shared a document with a moved one}.
    """
    short = [c for c in sorted(val) if len(val[c]) < minimum]
    if not short:
        return {"moved": {}, "dropped": 0}
    every = [ids for ids in train.values() if len(ids)]
    holders = _Holders(np.sort(np.concatenate(every)) if every else np.zeros(0, np.int64), table)
    removed: set[int] = set()
    moved: dict[str, int] = {}
    dropped = 0
    for c in short:
        need = minimum - len(val[c])
        picked = _pick(train[c], need, holders, removed)
        for w in picked:
            removed.add(w)
            sharers = [x for x in holders.of(w).tolist() if x not in removed]
            removed.update(sharers)
            dropped += len(sharers)
        gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
        left = int((~np.isin(train[c], gone)).sum())
        if len(picked) < need or left < 1:
            raise ConfigError(
                f"{names[c]} holds {len(val[c])} validation and {len(train[c])} training windows: too few to "
                f"hold out --val-min-windows {minimum} and still train; lower --k or --val-min-windows, or add data")
        val[c] = np.sort(np.concatenate([val[c], np.array(picked, dtype=np.int64)]))
        moved[str(c)] = len(picked)
    gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
    for c, ids in train.items():
        train[c] = ids[~np.isin(ids, gone)]
    return {"moved": moved, "dropped": dropped}


def _pick(ids: np.ndarray, need: int, holders: _Holders, removed: set[int]) -> list[int]:
    """Up to `need` windows of `ids`, those sharing documents with the fewest other windows first."""
    gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
    candidates = ids[~np.isin(ids, gone)]
    order = candidates[np.lexsort((candidates, holders.counts(candidates)))]
    picked: list[int] = []
    taken: set[int] = set()
    for w in order:
        if len(picked) == need:
            break
        w = int(w)
        if w in taken:
            continue
        picked.append(w)
        taken.update(holders.of(w).tolist())  # a sharer of a pick is dropped, not picked
    return picked
