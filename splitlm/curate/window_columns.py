"""The window table as columns: split, domain and documents of every window, no per-window objects.

Shards, holdout, cards and inspect need, for every window, whether it is held out, its domain and
which documents it holds. `read_window_columns` streams `windows-*.parquet` part by part (reading
only `window_id`, `split`, `domain` and the pieces' `doc_id`) into numpy arrays:
- `is_val_N` (bool) and `domain_N` (int32 codes into the sorted `domains`; -1 = no label);
- the documents as CSR: window w holds documents `doc_P[doc_offsets_N1[w]:doc_offsets_N1[w + 1]]`,
  dense int64 codes 0..D-1.
A document's code comes from a 128-bit hash of its id (two 64-bit polynomial hashes of the UTF-8
bytes and the length), hashed once per run of consecutive pieces of the same document (the packer
keeps a document's pieces together, so that is about once per document); equal ids always get
equal codes, and two different ids share one only on a 128-bit collision (~D^2 / 2^129).
Memory: 1 + 4 + 8 bytes per window, 8 per piece and 16 per document (the sorted hashes, which
`codes_of` uses to find documents named elsewhere, e.g. the dedup table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from splitlm.core.errors import SchemaError
from splitlm.core.parts import iter_batches
from splitlm.schemas.tables import WINDOWS

COLUMNS = ["window_id", "split", "domain", "pieces.list.element.doc_id"]
BATCH_ROWS = 65536
_P1, _P2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)  # odd multipliers
_L1, _L2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


@dataclass(frozen=True, eq=False)
class WindowColumns:
    is_val_N: np.ndarray  # bool
    domain_N: np.ndarray  # int32 code into `domains`, -1 when the window has no label
    domains: list[str]  # distinct labels, sorted
    doc_offsets_N1: np.ndarray  # int64 [N + 1]
    doc_P: np.ndarray  # int64 document codes, window by window
    doc_hash_D2: np.ndarray  # uint64 [D, 2], sorted: code d is row d

    def __len__(self) -> int:
        return len(self.is_val_N)

    @property
    def n_docs(self) -> int:
        return len(self.doc_hash_D2)

    def docs_of(self, ids_W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner, code) of every document of the windows `ids_W`: owner indexes into ids_W, in order."""
        ids_W = np.asarray(ids_W, dtype=np.int64)
        lo_W = self.doc_offsets_N1[ids_W]
        lens_W = self.doc_offsets_N1[ids_W + 1] - lo_W
        owner = np.repeat(np.arange(len(ids_W), dtype=np.int64), lens_W)
        within = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(lens_W) - lens_W, lens_W)
        return owner, self.doc_P[np.repeat(lo_W, lens_W) + within]

    def distinct_docs(self, ids_W: np.ndarray) -> int:
        return int(len(np.unique(self.docs_of(ids_W)[1])))

    def codes_of(self, doc_ids: pa.Array) -> np.ndarray:
        """Code of each id (-1 for an id no window holds)."""
        if len(doc_ids) == 0 or self.n_docs == 0:
            return np.full(len(doc_ids), -1, dtype=np.int64)
        key = _as_records(string_hashes(doc_ids))
        table = _as_records(self.doc_hash_D2)
        at = np.minimum(np.searchsorted(table, key), len(table) - 1)
        return np.where(table[at] == key, at, -1).astype(np.int64)

    def domain_labels(self, ids_W: np.ndarray) -> list[str | None]:
        """Domain labels of a few windows (for cards and exemplars)."""
        return [self.domains[c] if c >= 0 else None for c in self.domain_N[np.asarray(ids_W, dtype=np.int64)]]


def string_hashes(strings: pa.Array) -> np.ndarray:
    """uint64 [n, 2]: two polynomial hashes of each string's UTF-8 bytes, mixed with its length."""
    strings = pa.concat_arrays([strings.cast(pa.string())]) if len(strings) else pa.array([], pa.string())
    if strings.null_count:
        raise SchemaError("document ids must not be null")
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    offsets = offsets.astype(np.int64)
    data = strings.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]] if data is not None else np.zeros(0, np.uint8)
    starts, lens = offsets[:-1] - offsets[0], np.diff(offsets)
    pos = np.arange(len(raw), dtype=np.int64) - np.repeat(starts, lens)
    longest = int(lens.max()) if len(lens) else 0
    out = np.empty((len(lens), 2), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j, (p, mix) in enumerate(((_P1, _L1), (_P2, _L2))):
            powers = np.cumprod(np.full(max(longest, 1), p, dtype=np.uint64), dtype=np.uint64)
            terms = (raw.astype(np.uint64) + np.uint64(1)) * powers[pos]
            sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
            out[:, j] = (sums[starts + lens] - sums[starts]) ^ (lens.astype(np.uint64) * mix)
    return out


def _as_records(h_n2: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(h_n2).view(np.dtype([("a", "<u8"), ("b", "<u8")])).ravel()


class _Builder:
    def __init__(self):
        self.n = 0
        self.is_val: list[np.ndarray] = []
        self.domain: list[np.ndarray] = []
        self.labels: dict[str, int] = {}  # label -> first-seen code (distinct labels only)
        self.pieces: list[np.ndarray] = []  # pieces per window
        self.run_hash: list[np.ndarray] = []  # one row per run of equal consecutive doc ids
        self.run_len: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch, where: str) -> None:
        n = batch.num_rows
        ids = batch.column(0).to_numpy()
        if n and not np.array_equal(ids, np.arange(self.n, self.n + n)):
            raise SchemaError(f"{where}: window ids are not 0..N-1 in order near window {self.n}")
        split = batch.column(1)
        is_val = pc.equal(split, "val").to_numpy(zero_copy_only=False)
        if not pc.all(pc.is_in(split, pa.array(["train", "val"]))).as_py() and n:
            raise SchemaError(f"{where}: split must be train or val near window {self.n}")
        self.is_val.append(is_val)
        self.domain.append(self._domain_codes(batch.column(2)))
        pieces = batch.column(3)
        lens = np.diff(pieces.offsets.to_numpy()).astype(np.int64)
        if n and lens.min() < 1:
            raise SchemaError(f"{where}: window {self.n + int(np.argmin(lens))} holds no piece")
        flat = pieces.flatten()
        doc_ids = flat.field(0) if pa.types.is_struct(flat.type) else flat
        if len(doc_ids):
            new = np.ones(len(doc_ids), dtype=bool)
            new[1:] = ~pc.equal(doc_ids[1:], doc_ids[:-1]).to_numpy(zero_copy_only=False)
            starts = np.flatnonzero(new)
            self.run_hash.append(string_hashes(doc_ids.filter(pa.array(new))))
            self.run_len.append(np.diff(np.append(starts, len(doc_ids))).astype(np.int32))
        self.pieces.append(lens.astype(np.int32))
        self.n += n

    def _domain_codes(self, domain: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(domain)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        local = [self.labels.setdefault(x, len(self.labels)) for x in encoded.dictionary.to_pylist()]
        indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        lookup = np.array(local + [-1], dtype=np.int32)
        return lookup[indices]  # -1 indexes the trailing -1: no label

    def finish(self) -> WindowColumns:
        names = sorted(self.labels)
        rank = np.empty(len(names) + 1, dtype=np.int32)
        for new, name in enumerate(names):
            rank[self.labels[name]] = new
        rank[-1] = -1
        domain = np.concatenate(self.domain) if self.domain else np.zeros(0, np.int32)
        lens = np.concatenate(self.pieces) if self.pieces else np.zeros(0, np.int64)
        self.pieces.clear()
        offsets = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        if self.run_hash:
            code_R, hashes = _dense_codes(self.run_hash)
            doc_P = np.repeat(code_R, np.concatenate(self.run_len))
        else:
            doc_P, hashes = np.zeros(0, np.int64), np.zeros((0, 2), np.uint64)
        return WindowColumns(
            is_val_N=np.concatenate(self.is_val) if self.is_val else np.zeros(0, bool),
            domain_N=rank[domain].astype(np.int32), domains=names, doc_offsets_N1=offsets, doc_P=doc_P,
            doc_hash_D2=hashes,
        )


def _dense_codes(batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(int64 code per row, sorted distinct rows) of uint64 [R, 2] hashes given batch by batch.

    Empties `batches` as it goes and sorts with one lexsort: about 60 bytes a row at the peak.
    """
    h_R2 = np.concatenate(batches)
    batches.clear()
    order = np.lexsort((h_R2[:, 1], h_R2[:, 0]))
    h_R2 = h_R2[order]
    new = np.ones(len(h_R2), dtype=bool)
    new[1:] = (h_R2[1:, 0] != h_R2[:-1, 0]) | (h_R2[1:, 1] != h_R2[:-1, 1])
    sorted_codes = np.cumsum(new, dtype=np.int64)
    sorted_codes -= 1
    code_R = np.empty(len(h_R2), dtype=np.int64)
    code_R[order] = sorted_codes
    return code_R, np.ascontiguousarray(h_R2[new])


def build_window_columns(batches: Iterable[pa.RecordBatch], where: str = "windows") -> WindowColumns:
    """From record batches of (window_id, split, domain, pieces: list<struct<doc_id>> or list<string>)."""
    builder = _Builder()
    for batch in batches:
        builder.add(batch, where)
    return builder.finish()


def read_window_columns(run: Path, batch_size: int = BATCH_ROWS) -> WindowColumns:
    """The columns of `RUN/windows/windows-*.parquet`, read batch by batch."""
    folder = run / "windows"
    return build_window_columns(iter_batches(folder, "windows", WINDOWS, columns=COLUMNS, batch_size=batch_size),
                                str(folder / "windows-*.parquet"))


def first_windows(table: WindowColumns) -> np.ndarray:
    """int64 [D]: the first window holding each document."""
    _, first_piece = np.unique(table.doc_P, return_index=True)
    return np.searchsorted(table.doc_offsets_N1, first_piece, side="right") - 1


def read_doc_ids(run: Path, ids_W: np.ndarray, batch_size: int = BATCH_ROWS) -> dict[int, list[str]]:
    """Document ids of a few windows (exemplars), read batch by batch."""
    wanted = np.unique(np.asarray(ids_W, dtype=np.int64))
    out: dict[int, list[str]] = {}
    at = 0
    for batch in iter_batches(run / "windows", "windows", WINDOWS, columns=["pieces.list.element.doc_id"],
                              batch_size=batch_size):
        mine = wanted[(wanted >= at) & (wanted < at + batch.num_rows)]
        for w, pieces in zip(mine.tolist(), batch.column(0).take(pa.array(mine - at)).to_pylist()):
            out[w] = [p["doc_id"] if isinstance(p, dict) else p for p in pieces]
        at += batch.num_rows
    return out
