"""Shards: per cluster, a `train` and a `val` token array (memory-mapped) with an index.

`RUN/shards/cluster-XX/{train,val}/` each hold `tokens.bin` + `tokens.json` (see
`splitlm.schemas.tokens`) and `index.parquet` (SHARD_INDEX: window id, doc ids, domain), rows in
window-id order. Validation windows were held out per document before packing (windows stage);
here each cluster's validation set is capped at `val_max_docs` documents, as in the paper. Capped-off
validation windows move to training unless they share a document with a kept validation window
(then they are dropped and counted), so no validation document is ever trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.errors import ConfigError
from splitlm.core.parts import read_table
from splitlm.curate.stats import window_table
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.router import RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS, SHARD_INDEX
from splitlm.schemas.tokens import TokenArray, write_header

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)


@dataclass(frozen=True)
class ShardsConfig:
    val_max_docs: int = 10_000
    """Validation documents kept per cluster (the paper holds out 10,000)."""
    copy_rows: int = 4096
    """Windows copied per chunk (bounds memory)."""

    def __post_init__(self):
        if self.val_max_docs < 1:
            raise ConfigError(f"--val-max-docs must be >= 1, got {self.val_max_docs}")


def _cap_validation(val_W: np.ndarray, doc_ids: list[list[str]], cap: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, overflow) window ids: keep windows in order while their documents fit under the cap."""
    docs: set[str] = set()
    for i, w in enumerate(val_W):
        new = set(doc_ids[w]) - docs
        if len(docs) + len(new) > cap:
            return val_W[:i], val_W[i:]
        docs |= new
    return val_W, val_W[:0]


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


def write_shards(run: Path, out: Path, config: ShardsConfig, advance=lambda n: None) -> dict[str, Any]:
    tokens = TokenArray(run / "windows").tokens
    meta = window_table(run)
    labels = read_table(run / "clusters", "assignments", ASSIGNMENTS, columns=["cluster"]).column(0).to_numpy()
    k = RouterSpec.read(RunLayout(run).router_spec).k
    is_val = meta["split"] == "val"
    plan = {}
    for c in range(k):
        kept, overflow = _cap_validation(np.flatnonzero((labels == c) & is_val), meta["doc_ids"], config.val_max_docs)
        plan[c] = {"train": np.flatnonzero((labels == c) & ~is_val), "val": kept, "overflow": overflow}
    val_docs = {d for p in plan.values() for w in p["val"] for d in meta["doc_ids"][w]}
    counts: dict[str, Any] = {"k": k, "clusters": {}, "val_overflow_to_train": 0, "val_overflow_dropped": 0}
    for c, p in plan.items():
        clash = np.array([bool(val_docs & set(meta["doc_ids"][w])) for w in p["overflow"]], dtype=bool)
        train = np.sort(np.concatenate([p["train"], p["overflow"][~clash]]))
        counts["val_overflow_to_train"] += int((~clash).sum())
        counts["val_overflow_dropped"] += int(clash.sum())
        folder = out / cluster_name(c, k)
        n_train = _write_split(folder / "train", train, tokens, meta, config.copy_rows)
        n_val = _write_split(folder / "val", p["val"], tokens, meta, config.copy_rows)
        counts["clusters"][str(c)] = {
            "train_windows": n_train, "val_windows": n_val,
            "val_documents": len({d for w in p["val"] for d in meta["doc_ids"][w]}),
            "train_tokens": n_train * tokens.shape[1], "val_tokens": n_val * tokens.shape[1],
        }
        advance(n_train + n_val)
    counts["windows"] = sum(v["train_windows"] + v["val_windows"] for v in counts["clusters"].values())
    assert counts["windows"] + counts["val_overflow_dropped"] == len(tokens), "shard accounting is off"
    return counts
