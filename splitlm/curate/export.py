"""`curate export`: shards in formats other trainers read.

- `megatron`: per cluster and split, `<name>.bin` + `<name>.idx` in Megatron-LM's indexed-dataset
  layout (the `.idx` holds the 9-byte magic `MMIDIDX\\0\\0`, version 1, a dtype code, the sequence and
  document counts, then int32 sequence lengths, int64 byte pointers and int64 document boundaries).
  Each window is one sequence and one document; the `.bin` is the shard's token array as is (its
  part files concatenated in order when it has several).
- `parquet`: per cluster and split, `<name>.parquet` with `input_ids` (list<int32>), `window_id`,
  `domain`, `cluster`, readable by `datasets.load_dataset("parquet", data_files=...)`.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np

from splitlm.core.atomic import fresh_folder, publish_folder
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.paths import out_folder
from splitlm.schemas.tokens import TokenArray

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPES = {np.dtype("uint16"): 8, np.dtype("uint32"): 4}  # uint32 ids are written as int32
FORMATS = ("megatron", "parquet")


def _shards(run: Path) -> list[tuple[int, str, Path]]:
    root = run / "shards"
    if not (root / "manifest.json").exists():
        raise SchemaError(f"{root}: no finished shards; run `curate cluster` first")
    return [(int(d.name.split("-")[1]), f"{d.name}-{split}", d / split)
            for d in sorted(root.glob("cluster-*")) for split in ("train", "val")]


def write_megatron(folder: Path, name: str, out: Path) -> None:
    arr = TokenArray(folder)
    dtype = np.dtype(arr.header.dtype)
    code = MEGATRON_DTYPES[dtype]
    if dtype == np.uint32 and len(arr) and int(arr.tokens.max()) >= 2**31:
        raise ConfigError(f"{folder}: token ids exceed int32, which Megatron cannot store")
    n, width = len(arr), arr.header.width
    with open(out / f"{name}.bin", "wb") as dst:  # a parted array's files, concatenated in row order
        for path in arr.paths:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    lengths = np.full(n, width, dtype=np.int32)
    pointers = np.arange(n, dtype=np.int64) * width * dtype.itemsize
    documents = np.arange(n + 1, dtype=np.int64)
    with open(out / f"{name}.idx", "wb") as fh:
        fh.write(MEGATRON_MAGIC + struct.pack("<Q", 1) + struct.pack("<B", code))
        fh.write(struct.pack("<Q", n) + struct.pack("<Q", len(documents)))
        fh.write(lengths.tobytes() + pointers.tobytes() + documents.tobytes())


def write_parquet(folder: Path, name: str, cluster: int, out: Path, rows_per_group: int = 512) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arr = TokenArray(folder)
    index = pq.read_table(folder / "index.parquet")
    schema = pa.schema([("input_ids", pa.list_(pa.int32())), ("window_id", pa.int64()), ("domain", pa.string()),
                        ("cluster", pa.int32())])
    with pq.ParquetWriter(out / f"{name}.parquet", schema, compression="zstd") as writer:
        for lo in range(0, max(len(arr), 1), rows_per_group):
            hi = min(lo + rows_per_group, len(arr))
            ids = np.asarray(arr.tokens[lo:hi], dtype=np.int32)
            flat = pa.array(ids.reshape(-1), pa.int32())
            offsets = pa.array(np.arange(hi - lo + 1, dtype=np.int32) * arr.header.width)
            writer.write_table(pa.table({
                "input_ids": pa.ListArray.from_arrays(offsets, flat),
                "window_id": index.column("window_id").slice(lo, hi - lo),
                "domain": index.column("domain").slice(lo, hi - lo),
                "cluster": pa.array(np.full(hi - lo, cluster, dtype=np.int32)),
            }, schema=schema))


def export_run(run: Path, fmt: str, out: Path | None = None) -> Path:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {FORMATS}, got {fmt!r}")
    target = out_folder(out or run / "export" / fmt)
    shards = _shards(run)
    partial = fresh_folder(target.with_name(f".{target.name}.partial"))
    for cluster, name, folder in shards:
        if fmt == "megatron":
            write_megatron(folder, name, partial)
        else:
            write_parquet(folder, name, cluster, partial)
    publish_folder(partial, target)
    return target
