"""The dedup shuffle: which documents could be duplicates at all, found by band keys in parallel.

The dedup barrier replays the one-process rule (`splitlm.curate.dedup.Deduplicator`) in document
order. A document can only be found a duplicate, or be found the original of one, when it shares
something with another document: its exact key, or one LSH band (the same `r` signature values as
the LSH index slices them, `MinHashLSH.hashranges`). A document that shares nothing is kept, and no
query ever returns it. So the replay needs only the documents that share a key: the "candidates".
Replaying the candidates alone, in document order, takes exactly the decisions a replay of all
documents takes, while the barrier holds signatures of kept candidates only, not of every document.

Finding the candidates is a shuffle:
- map (`write_band_keys`, in each group's signing task): per document, one 64-bit key per band (a
  mix of the band's values and its index) and one for the exact key; rows (key, document) go to
  partition key % P, one file per partition in the group's folder;
- reduce (`shared_documents`, one task per partition): every group's rows of that partition; keys
  held by two or more documents mark them all as candidates.
A 64-bit mix can make two different bands collide; that only adds candidates (the replay checks
the real bands), it never loses one: equal bands always give equal keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_path

ROWS = np.dtype([("key", "<u8"), ("doc", "<i8")])
GROUP_SHIFT = 40  # a document's id across groups: group << 40 | row (document order, 10^12 rows a group)
_MULT = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def partition_name(p: int) -> str:
    return f"bands-{p:05d}.npy"


def _mixed(h_N: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit (keys spread over partitions)."""
    with np.errstate(over="ignore"):
        h_N = (h_N ^ (h_N >> np.uint64(30))) * _MIX[0]
        h_N = (h_N ^ (h_N >> np.uint64(27))) * _MIX[1]
        return h_N ^ (h_N >> np.uint64(31))


def band_keys(signatures_NP: np.ndarray, hashranges: list[tuple[int, int]]) -> np.ndarray:
    """[N, bands] uint64: equal band values (same band) give equal keys; the band index is mixed in."""
    sig = np.asarray(signatures_NP, dtype=np.uint64)
    out = np.empty((len(sig), len(hashranges)), np.uint64)
    with np.errstate(over="ignore"):
        for b, (lo, hi) in enumerate(hashranges):
            h = np.full(len(sig), np.uint64(b + 1) * _MULT, np.uint64)
            for c in range(lo, hi):
                h = _mixed(h ^ sig[:, c])
            out[:, b] = h
    return out


def exact_keys(keys_N32: list[bytes]) -> np.ndarray:
    """[N] uint64 from the exact keys (sha256 digests), kept apart from every band key."""
    first = np.frombuffer(b"".join(k[:8] for k in keys_N32), "<u8") if keys_N32 else np.empty(0, np.uint64)
    return _mixed(first ^ _MULT)


def write_band_keys(folder: Path, exact_N: np.ndarray, bands_NB: np.ndarray, partitions: int) -> None:
    """The group's (key, row) pairs, one file per partition (key % partitions), written atomically."""
    n = len(exact_N)
    keys = np.concatenate([exact_N[:, None], bands_NB], axis=1).ravel() if n else np.empty(0, np.uint64)
    docs = np.repeat(np.arange(n, dtype=np.int64), 1 + bands_NB.shape[1]) if n else np.empty(0, np.int64)
    part = keys % np.uint64(partitions)
    for p in range(partitions):
        mine = part == p
        rows = np.empty(int(mine.sum()), ROWS)
        rows["key"], rows["doc"] = keys[mine], docs[mine]
        with atomic_path(folder / partition_name(p)) as tmp, open(tmp, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)


def shared_documents(folders: list[str], p: int) -> np.ndarray:
    """Reduce: sorted ids (group << GROUP_SHIFT | row) of documents sharing a key of partition p."""
    parts = []
    for g, folder in enumerate(folders):
        rows = np.load(Path(folder) / partition_name(p), allow_pickle=False)
        ids = (np.int64(g) << np.int64(GROUP_SHIFT)) | rows["doc"]
        parts.append((rows["key"], ids))
    if not parts:
        return np.empty(0, np.int64)
    keys, ids = np.concatenate([k for k, _ in parts]), np.concatenate([i for _, i in parts])
    order = np.argsort(keys, kind="stable")
    keys, ids = keys[order], ids[order]
    same = keys[1:] == keys[:-1]
    shared = np.zeros(len(keys), bool)
    shared[1:] |= same
    shared[:-1] |= same
    return np.unique(ids[shared])
