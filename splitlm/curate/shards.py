"""Shards: per cluster, a `train` and a `val` token array (memory-mapped) with an index.

`RUN/shards/cluster-XX/{train,val}/` each hold `tokens.bin` + `tokens.json` (see
`splitlm.schemas.tokens`) and `index.parquet` (SHARD_INDEX: window id, doc ids, domain), rows in
window-id order. Validation windows were held out per document before packing (windows stage);
here each cluster's validation set is capped at `val_max_docs` documents, as in the paper, and
topped up to `val_min_windows` windows (see `splitlm.curate.holdout`). Capped-off validation
windows move to training unless they share a document with a kept validation window (then they
are dropped and counted), so no validation document is ever trained on.
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
from splitlm.core.parts import read_table
from splitlm.curate import holdout
from splitlm.curate.stats import window_table
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.router import RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS, SHARD_INDEX
from splitlm.schemas.tokens import TokenArray, write_header

ALGORITHM = 2  # bump when the same config and input would give other output (see `splitlm.curate.stage`)


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


def _write_split(folder: Path, ids: np.ndarray, tokens: np.ndarray, meta: dict, chunk: int) -> int:
    folder.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(folder / "tokens.bin", "wb") as fh:
        for lo in range(0, len(ids), chunk):
            data = np.ascontiguousarray(tokens[ids[lo : lo + chunk]]).tobytes()
            fh.write(data)
            digest.update(data)
    write_header(folder, tokens.dtype, len(ids), tokens.shape[1], digest.hexdigest())
    index = pa.table({"window_id": pa.array(ids, pa.int64()),
                      "doc_ids": pa.array([meta["doc_ids"][w] for w in ids], pa.list_(pa.string())),
                      "domain": pa.array([meta["domain"][w] for w in ids], pa.string())}, schema=SHARD_INDEX)
    pq.write_table(index, folder / "index.parquet", compression="zstd")
    return len(ids)


def _plan(labels: np.ndarray, meta: dict, k: int, config: ShardsConfig) -> tuple[dict, dict, dict[str, Any]]:
    """(train, val, counts): window ids per cluster after the validation cap and floor."""
    is_val = meta["split"] == "val"
    train, val, overflow = {}, {}, {}
    for c in range(k):
        val[c], overflow[c] = holdout.cap(np.flatnonzero((labels == c) & is_val), meta["doc_ids"],
                                          config.val_max_docs)
    val_docs = {d for ids in val.values() for w in ids for d in meta["doc_ids"][w]}
    counts: dict[str, Any] = {"k": k, "val_overflow_to_train": 0, "val_overflow_dropped": 0}
    for c in range(k):
        clash = np.array([bool(val_docs & set(meta["doc_ids"][w])) for w in overflow[c]], dtype=bool)
        train[c] = np.sort(np.concatenate([np.flatnonzero((labels == c) & ~is_val), overflow[c][~clash]]))
        counts["val_overflow_to_train"] += int((~clash).sum())
        counts["val_overflow_dropped"] += int(clash.sum())
    floor = holdout.top_up(train, val, meta["doc_ids"], config.val_min_windows,
                           {c: cluster_name(c, k) for c in range(k)})
    counts["val_topped_up"], counts["val_topup_dropped"] = floor["moved"], floor["dropped"]
    return train, val, counts


def write_shards(run: Path, out: Path, config: ShardsConfig, advance=lambda n: None) -> dict[str, Any]:
    tokens = TokenArray(run / "windows").tokens
    meta = window_table(run)
    labels = read_table(run / "clusters", "assignments", ASSIGNMENTS, columns=["cluster"]).column(0).to_numpy()
    k = RouterSpec.read(RunLayout(run).router_spec).k
    stray = int(((labels < 0) | (labels >= k)).sum())
    if stray or len(labels) != len(tokens):
        raise SchemaError(f"{run / 'clusters'}: assignments give {len(labels)} windows ({stray} window(s) outside "
                          f"cluster 0-{k - 1}) for {len(tokens)} windows and K={k}; rerun `curate cluster`")
    train, val, counts = _plan(labels, meta, k, config)
    counts["clusters"] = {}
    for c in range(k):
        folder = out / cluster_name(c, k)
        n_train = _write_split(folder / "train", train[c], tokens, meta, config.copy_rows)
        n_val = _write_split(folder / "val", val[c], tokens, meta, config.copy_rows)
        counts["clusters"][str(c)] = {
            "train_windows": n_train, "val_windows": n_val,
            "val_documents": len({d for w in val[c] for d in meta["doc_ids"][w]}),
            "train_tokens": n_train * tokens.shape[1], "val_tokens": n_val * tokens.shape[1],
        }
        advance(n_train + n_val)
    counts["windows"] = sum(v["train_windows"] + v["val_windows"] for v in counts["clusters"].values())
    lost = counts["val_overflow_dropped"] + counts["val_topup_dropped"]
    if counts["windows"] + lost != len(tokens):
        raise RuntimeError(f"shard accounting is off: {counts['windows']} + {lost} dropped != {len(tokens)} windows")
    return counts
