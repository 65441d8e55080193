"""Shards: per cluster, a `train` and a `val` token array (memory-mapped) with an index.

`RUN/shards/cluster-XX/{train,val}/` each hold `tokens.bin` + `tokens.json` (see
`splitlm.schemas.tokens`) and `index.parquet` (SHARD_INDEX: window id, doc ids, domain), rows in
window-id order. Validation windows were held out per document before packing (windows stage);
here each cluster's validation set is capped at `val_max_docs` documents, as in the paper, and
topped up to `val_min_windows` windows (see `splitlm.curate.holdout`). Capped-off validation
windows move to training unless they share a document with a kept validation window (then they
are dropped and counted), so no validation document is ever trained on.

Streaming: the plan works on columns (`splitlm.curate.window_columns`; labels int32, one
destination int32 per window) in the driver: the validation cap and floor are the stage's barrier.
The token rows are then copied by engine maps (`splitlm.curate.shard_copy`; Ray tasks under
`--engine ray`): one task per token part of the windows stage reads its rows `copy_rows` at a
time and appends each to a piece file of its cluster's split, then one task per cluster (the
barrier merging a cluster's shard parts) joins the pieces in part order into that split's
`tokens.bin`, so the bytes are those of one process copying every window in id order. The
indexes are written by one task from the windows table, batch by batch, in bounded row groups.
Clusters are taken `OPEN_CLUSTERS` at a time, so open files stay bounded for any K.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.hashing import sha256_file, sha256_json
from splitlm.core.parts import iter_batches
from splitlm.core.stage import work_dir
from splitlm.curate import holdout
from splitlm.curate.engine.run import Engine
from splitlm.curate.shard_copy import copy_part, merge_cluster, plan_copy_parts, remove_pieces, split_folder
from splitlm.curate.window_columns import WindowColumns, read_window_columns
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.router import RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS, SHARD_INDEX, WINDOWS
from splitlm.schemas.tokens import TokenArray

ALGORITHM = 3  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
# 3: index.parquet written in row groups of up to INDEX_GROUP_ROWS

OPEN_CLUSTERS = 128  # clusters written per pass over the data: 4 open files each
INDEX_GROUP_ROWS = 8192
INDEX_BUFFER_ROWS = 262_144  # index rows buffered across a pass's clusters before the largest is flushed


@dataclass(frozen=True)
class ShardsConfig:
    val_max_docs: int = 10_000
    """Validation documents kept per cluster (the paper holds out 10,000)."""
    val_min_windows: int = 4
    """Validation windows every cluster gets, moved from its training set when it has fewer."""
    copy_rows: int = 4096
    """Windows copied per chunk (bounds memory)."""

    def __post_init__(self):
        if self.val_max_docs < 1:
            raise ConfigError(f"--val-max-docs must be >= 1, got {self.val_max_docs}")
        if self.val_min_windows < 0:
            raise ConfigError(f"--val-min-windows must be >= 0, got {self.val_min_windows}")
        if self.copy_rows < 1:
            raise ConfigError(f"copy_rows must be >= 1, got {self.copy_rows}")


def read_labels(run: Path, n: int | None = None) -> np.ndarray:
    """int32 cluster of every window, read batch by batch from the assignment parts."""
    out, at = [], 0
    for batch in iter_batches(run / "clusters", "assignments", ASSIGNMENTS, columns=["window_id", "cluster"],
                              batch_size=65536):
        ids = batch.column(0).to_numpy()
        if len(ids) and not np.array_equal(ids, np.arange(at, at + len(ids))):
            raise SchemaError(f"{run / 'clusters'}: assignment window ids are not 0..N-1 in order near {at}")
        out.append(batch.column(1).to_numpy().astype(np.int32))
        at += len(ids)
    return np.concatenate(out) if out else np.zeros(0, np.int32)


def plan(labels: np.ndarray, table: WindowColumns, k: int, config: ShardsConfig) -> tuple[dict, dict, dict[str, Any]]:
    """(train, val, counts): sorted window ids per cluster after the validation cap and floor."""
    order = np.argsort(labels, kind="stable")  # members of each cluster together, in window-id order
    members = np.split(order, np.cumsum(np.bincount(labels, minlength=k))[:-1])
    is_val = table.is_val_N
    train, val, overflow = {}, {}, {}
    for c in range(k):
        val[c], overflow[c] = holdout.cap(members[c][is_val[members[c]]], table, config.val_max_docs)
    kept = [ids for ids in val.values() if len(ids)]
    val_docs = np.unique(table.docs_of(np.concatenate(kept))[1]) if kept else np.zeros(0, np.int64)
    counts: dict[str, Any] = {"k": k, "val_overflow_to_train": 0, "val_overflow_dropped": 0}
    for c in range(k):
        clash = holdout.touching(overflow[c], val_docs, table)
        train[c] = np.sort(np.concatenate([members[c][~is_val[members[c]]], overflow[c][~clash]]))
        counts["val_overflow_to_train"] += int((~clash).sum())
        counts["val_overflow_dropped"] += int(clash.sum())
    floor = holdout.top_up(train, val, table, config.val_min_windows, {c: cluster_name(c, k) for c in range(k)})
    counts["val_topped_up"], counts["val_topup_dropped"] = floor["moved"], floor["dropped"]
    return train, val, counts


def destinations(train: dict, val: dict, n: int) -> np.ndarray:
    """int32 per window: 2 * cluster (train) or 2 * cluster + 1 (val); -1 = dropped."""
    dest = np.full(n, -1, dtype=np.int32)
    for c in train:
        dest[train[c]] = 2 * c
        dest[val[c]] = 2 * c + 1
    return dest


def _write_indexes(run: Path, out: Path, dest: np.ndarray, k: int, group: range) -> None:
    """index.parquet of every split of the group's clusters, from the windows table batch by batch."""
    ds = range(2 * group.start, 2 * group.stop)
    writers = {d: pq.ParquetWriter(split_folder(out, d, k) / "index.parquet", SHARD_INDEX, compression="zstd")
               for d in ds}
    buffers: dict[int, list[pa.Table]] = {d: [] for d in ds}
    rows = dict.fromkeys(ds, 0)

    def flush(d: int) -> None:
        if rows[d]:
            writers[d].write_table(pa.concat_tables(buffers[d]), row_group_size=INDEX_GROUP_ROWS)
            buffers[d], rows[d] = [], 0

    try:
        at = 0
        for batch in iter_batches(run / "windows", "windows", WINDOWS,
                                  columns=["window_id", "domain", "pieces.list.element.doc_id"], batch_size=65536):
            d_B = dest[at : at + batch.num_rows]
            at += batch.num_rows
            mine = np.flatnonzero((d_B >= ds.start) & (d_B < ds.stop))
            if not len(mine):
                continue
            pieces = batch.column(2)
            flat = pieces.flatten()
            doc_ids = pa.ListArray.from_arrays(pieces.offsets, flat.field(0) if pa.types.is_struct(flat.type) else flat)
            part = pa.table({"window_id": batch.column(0), "doc_ids": doc_ids, "domain": batch.column(1)},
                            schema=SHARD_INDEX)
            order = mine[np.argsort(d_B[mine], kind="stable")]
            bounds = np.searchsorted(d_B[order], np.arange(ds.start, ds.stop + 1))
            for d, a, b in zip(ds, bounds[:-1], bounds[1:]):
                if b > a:
                    buffers[d].append(part.take(pa.array(order[a:b])))
                    rows[d] += int(b - a)
                    if rows[d] >= INDEX_GROUP_ROWS:
                        flush(d)
            while sum(rows.values()) > INDEX_BUFFER_ROWS:
                flush(max(rows, key=lambda d: (rows[d], -d)))
        for d in ds:
            flush(d)
    finally:
        for writer in writers.values():
            writer.close()


def write_indexes(run: Path, out: Path, dest: np.ndarray, k: int, open_clusters: int) -> None:
    """Every split's index.parquet, `open_clusters` clusters per pass over the windows table."""
    for g in range(0, k, open_clusters):
        _write_indexes(run, out, dest, k, range(g, min(g + open_clusters, k)))


def _copy_tokens(run: Path, out: Path, tokens: TokenArray, dest: np.ndarray, k: int, config: ShardsConfig,
                 engine: Engine, advance) -> list[dict]:
    """The token rows copied to their splits: a map over the windows' token parts, then one merge per cluster."""
    key = sha256_json([hashlib.sha256(dest.tobytes()).hexdigest(), sha256_file(run / "windows" / "tokens.json"), k,
                       OPEN_CLUSTERS, ALGORITHM])
    scratch = work_dir(run, "shards", key)  # finished parts survive a crash; keyed so stale ones are never reused
    parts = plan_copy_parts(tokens)
    results = engine.map(copy_part, [(str(run / "windows"), str(scratch), p, lo, hi, dest[lo:hi], k, config.copy_rows,
                                      OPEN_CLUSTERS) for p, lo, hi in parts])
    sizes = np.bincount(dest[dest >= 0], minlength=2 * k)
    dtype, width = tokens[0:0].dtype.name, tokens.seq_len + 1
    engine.map(merge_cluster, [(str(out), str(scratch), len(parts), c, k, dtype, width,
                                (int(sizes[2 * c]), int(sizes[2 * c + 1]))) for c in range(k)],
               lambda c, r: advance(int(sizes[2 * c] + sizes[2 * c + 1])))
    remove_pieces(scratch)
    return [{"part": r["part"], "pid": r["pid"], "resumed": r["resumed"]} for r in results]


def write_shards(run: Path, out: Path, config: ShardsConfig, advance=lambda n: None,
                 engine: Engine | None = None) -> dict[str, Any]:
    tokens = TokenArray(run / "windows")
    table = read_window_columns(run)
    labels = read_labels(run)
    k = RouterSpec.read(RunLayout(run).router_spec).k
    stray = int(((labels < 0) | (labels >= k)).sum())
    if stray or len(labels) != len(tokens) or len(table) != len(tokens):
        raise SchemaError(f"{run / 'clusters'}: assignments give {len(labels)} windows ({stray} window(s) outside "
                          f"cluster 0-{k - 1}) for {len(tokens)} windows and K={k}; rerun `curate cluster`")
    train, val, counts = plan(labels, table, k, config)
    dest = destinations(train, val, len(labels))
    width = tokens.seq_len + 1
    for c in range(k):
        for split in ("train", "val"):
            (out / cluster_name(c, k) / split).mkdir(parents=True)
    counts["tasks"] = _copy_tokens(run, out, tokens, dest, k, config, engine or Engine(), advance)
    counts["clusters"] = {}
    (engine or Engine()).map(write_indexes, [(run, out, dest, k, OPEN_CLUSTERS)])  # one task: reads windows once a pass
    for c in range(k):
        n_train, n_val = len(train[c]), len(val[c])
        counts["clusters"][str(c)] = {
            "train_windows": n_train, "val_windows": n_val,
            "val_documents": table.distinct_docs(val[c]),
            "train_tokens": n_train * width, "val_tokens": n_val * width,
        }
    counts["windows"] = sum(v["train_windows"] + v["val_windows"] for v in counts["clusters"].values())
    lost = counts["val_overflow_dropped"] + counts["val_topup_dropped"]
    if counts["windows"] + lost != len(tokens) or int((dest >= 0).sum()) != counts["windows"]:
        raise RuntimeError(f"shard accounting is off: {counts['windows']} + {lost} dropped != {len(tokens)} windows")
    return counts
