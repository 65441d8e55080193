"""Data contracts between stages. Nothing else crosses a stage boundary.

- `tables`: Arrow schemas of every Parquet file a stage writes, checked when read.
- `manifest`: the per-stage manifest (config, fingerprints, counts, part hashes).
- `tokens`: the memory-mapped token-array format of windows and shards.
- `router`: the JSON spec saved next to the router's safetensors.
"""

from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tables import (
    ASSIGNMENTS,
    DOCUMENTS,
    DUPLICATES,
    QUARANTINE,
    SHARD_INDEX,
    WINDOWS,
    check_schema,
)
from splitlm.schemas.tokens import TokenArray, token_dtype

__all__ = [
    "ASSIGNMENTS",
    "DOCUMENTS",
    "DUPLICATES",
    "QUARANTINE",
    "SHARD_INDEX",
    "WINDOWS",
    "StageManifest",
    "TokenArray",
    "check_schema",
    "token_dtype",
]
