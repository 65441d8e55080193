"""Arrow schemas of the Parquet tables stages exchange.

Every reader calls `check_schema` so a file that does not match is a clear error, never coerced.
"""

from __future__ import annotations

import pyarrow as pa

from splitlm.core.parts import check_schema  # noqa: F401  (re-exported: readers check every table)

# documents/part-*.parquet: one row per accepted input document, in input order.
DOCUMENTS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("domain", pa.string()),  # label from --domain-field, null when absent
        pa.field("source", pa.string(), nullable=False),  # input file path as given
        pa.field("line", pa.int64(), nullable=False),  # 1-based line (JSONL), row (Parquet), 1 (txt)
    ]
)

# documents/quarantine.parquet: every rejected input row, with the reason.
QUARANTINE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # malformed_json, invalid_utf8, ...
        pa.field("detail", pa.string()),
    ]
)

# dedup/duplicates.parquet: every document removed as a duplicate and the id it duplicates.
DUPLICATES = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # "exact" | "near"
        pa.field("domain", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=False),
    ]
)

# One contiguous run of a document's tokens inside a window.
PIECE = pa.struct(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("offset", pa.int32(), nullable=False),  # position of the run inside the window
        pa.field("token_start", pa.int32(), nullable=False),  # [start, end) in the document's tokens
        pa.field("token_end", pa.int32(), nullable=False),
        pa.field("char_start", pa.int64(), nullable=False),  # [start, end) in the document's text
        pa.field("char_end", pa.int64(), nullable=False),
    ]
)

DOMAIN_COUNT = pa.struct([pa.field("label", pa.string()), pa.field("tokens", pa.int32())])

# windows/windows.parquet: row i describes row i of windows/tokens.bin.
WINDOWS = pa.schema(
    [
        pa.field("window_id", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # "train" | "val" (held out per document)
        pa.field("domain", pa.string()),  # label holding most of the window's tokens
        pa.field("domain_mix", pa.list_(DOMAIN_COUNT), nullable=False),
        pa.field("pieces", pa.list_(PIECE), nullable=False),
    ]
)

# clusters/assignments.parquet: the cluster of every window (same rule as the router).
ASSIGNMENTS = pa.schema(
    [
        pa.field("window_id", pa.int64(), nullable=False),
        pa.field("cluster", pa.int32(), nullable=False),
        pa.field("distance", pa.float32(), nullable=False),  # squared L2 to the centroid, no bias
    ]
)

# shards/cluster-XX/{train,val}/index.parquet: row i describes row i of that tokens.bin.
SHARD_INDEX = pa.schema(
    [
        pa.field("window_id", pa.int64(), nullable=False),
        pa.field("doc_ids", pa.list_(pa.string()), nullable=False),
        pa.field("domain", pa.string()),
    ]
)
