"""Bounded reads of row arrays (token arrays, vectors): row-range chunks and a few picked rows.

Stages read `TokenArray` and the embedding vectors only through `[a:b]` row slices, a chunk at a
time, so memory stays at one chunk whatever N is. Those arrays are memory-mapped files: pages a
process has read stay in its resident set (file-backed, shared with the page cache) until the
kernel needs them, so a stage streaming a 4 GB file would show a 4 GB peak RSS without holding
anything. After copying each chunk, `row_chunks` tells the kernel the chunk's pages are no longer
needed by this process (`madvise(MADV_DONTNEED)` on read-only shared mappings: the data stays in
the page cache, only this process's mapping of it is dropped). Arrays that are not read-only
memory maps are left alone.
"""

from __future__ import annotations

import mmap
from typing import Iterator

import numpy as np

_PAGE = mmap.PAGESIZE


def _mapping(view):
    """(np.memmap owning `view`'s memory, its mmap) by the view's base chain; (None, None) if none."""
    obj = view
    while obj is not None:
        if getattr(obj, "_mmap", None) is not None:
            return obj, obj._mmap
        obj = getattr(obj, "base", None)
    return None, None


def release(view) -> None:
    """Drop the pages of `view` (a slice of a read-only np.memmap, or an ndarray view of one, as a
    `PartedRows` slice within one part is) from this process's resident set."""
    owner, mm = _mapping(view)
    if mm is None or getattr(owner, "mode", None) != "r" or not hasattr(mm, "madvise") or view.nbytes == 0:
        return
    try:
        base = np.frombuffer(mm, dtype=np.uint8).__array_interface__["data"][0]
        start = view.__array_interface__["data"][0] - base
        lo = start // _PAGE * _PAGE
        mm.madvise(mmap.MADV_DONTNEED, lo, start + view.nbytes - lo)
    except (OSError, ValueError, TypeError, BufferError):
        pass  # only a hint: memory use, not results, depends on it


def row_chunks(array, chunk: int, lo: int = 0, hi: int | None = None, dtype=None) -> Iterator[tuple[int, np.ndarray]]:
    """(start, copy of rows [start, start + chunk)) over [lo, hi), as `dtype` when given."""
    hi = len(array) if hi is None else hi
    for start in range(lo, hi, chunk):
        view = array[start : min(start + chunk, hi)]
        rows = np.array(view, dtype=dtype if dtype is not None else view.dtype, order="C", copy=True)
        release(view)
        yield start, rows


def take_rows(array, ids: np.ndarray, dtype=None, gap: int = 64, span: int = 4096) -> np.ndarray:
    """Rows `ids` (any order, repeats allowed) read as sorted runs of row slices: a bounded sample.

    Ids closer than `gap` rows share one slice, and no slice spans more than `span` rows.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    first = array[0:0]
    out = np.empty((len(ids), *first.shape[1:]), dtype=dtype if dtype is not None else first.dtype)
    if not len(ids):
        return out
    cut = np.flatnonzero((np.diff(sorted_ids) > gap) | (np.diff(sorted_ids // span) != 0)) + 1
    for i, j in zip(np.concatenate([[0], cut]), np.concatenate([cut, [len(ids)]])):
        lo, hi = int(sorted_ids[i]), int(sorted_ids[j - 1]) + 1
        view = array[lo:hi]
        out[order[i:j]] = np.asarray(view)[sorted_ids[i:j] - lo]
        release(view)
    return out


class SlicedRows:
    """A row array seen through bounded reads: `[a:b]` copies the rows and drops their mapped pages,
    `[ids]` (an index array, e.g. a fit sample) reads them as sorted runs of slices (`take_rows`).

    For code that indexes a whole array (the k-means fit samples rows) without keeping the
    memory-mapped pages it touched resident.
    """

    def __init__(self, array):
        self.array = array
        first = array[0:0]
        self.dtype = first.dtype
        self.shape = (len(array), *first.shape[1:])
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, slice):
            view = self.array[key]
            rows = np.array(view, copy=True)
            release(view)
            return rows
        ids = np.asarray(key)
        if ids.dtype == bool:
            ids = np.flatnonzero(ids)
        if ids.ndim == 0:
            return take_rows(self.array, ids.reshape(1))[0]
        return take_rows(self.array, ids)
