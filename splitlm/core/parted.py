"""Row views over several part files: one logical [rows, ...] array behind many memory maps.

`PartedRows(parts)` takes the parts in order (each a memmap or array with the same trailing shape
and dtype) and answers `len()`, `.shape`, `.dtype`, `[i]`, `[a:b]` (a numpy copy of just those
rows, read part by part), `[index_array]` (fancy indexing, read part by part in the order asked),
`[rows, cols]` and iteration. Nothing is loaded until asked: memory is that of the rows returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class PartedRows:
    def __init__(self, parts: Sequence[np.ndarray]):
        if not parts:
            raise ValueError("PartedRows needs at least one part")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)
        self.dtype = self.parts[0].dtype
        self.shape = (int(self.offsets[-1]), *self.parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __array__(self, dtype=None, copy=None):
        out = self[0 : len(self)]
        return out if dtype is None else out.astype(dtype)

    def __iter__(self):
        for part in self.parts:
            yield from part

    def reshape(self, *shape):
        return np.asarray(self).reshape(*shape)

    def max(self):
        return max(part.max() for part in self.parts if len(part))

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        first = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        pieces = []
        while lo < hi:
            base = int(self.offsets[first])
            take = min(hi, int(self.offsets[first + 1])) - lo
            pieces.append(np.asarray(self.parts[first][lo - base : lo - base + take]))
            lo += take
            first += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty((0, *self.shape[1:]), self.dtype)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            rows = self._rows(lo, max(hi, lo)) if step == 1 else self[np.arange(lo, hi, step)]
            return rows
        if np.isscalar(key) and np.issubdtype(type(key), np.integer) or isinstance(key, int):
            i = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            part = int(np.searchsorted(self.offsets, i, side="right")) - 1
            return self.parts[part][i - int(self.offsets[part])]
        index = np.asarray(key)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = np.where(index < 0, index + len(self), index).astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        out = np.empty((*index.shape, *self.shape[1:]), self.dtype)
        which = np.searchsorted(self.offsets, index, side="right") - 1
        for part in np.unique(which):
            mask = which == part
            out[mask] = self.parts[part][index[mask] - int(self.offsets[part])]
        return out
