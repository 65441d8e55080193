"""The windows stage in file groups: a map that tokenizes and packs one group, and the id barrier.

`window_group` reads its group's documents parts minus the group's duplicates part and packs them
as one `concat` stream (train and val) into `tokens-XXXXX.bin` parts and `windows-*.parquet`,
window ids from 0. The barrier `merge_windows` assigns global window ids in group order (a group's
ids are shifted by the windows of the groups before it; the provenance parts are rewritten with
the shifted ids, the token parts are linked unchanged) and writes the one `tokens.json` listing
every part with its rows and sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from splitlm.core.parts import part_files
from splitlm.curate.engine.groups import attempt, link, mark_done, read_done
from splitlm.curate.windows import WindowsConfig, pack_windows
from splitlm.schemas.tokens import finish, part_name

SUMMED = ("documents_in", "documents_windowed", "documents_dropped", "windows", "windows_val", "tokens_in",
          "tokens", "tokens_dropped")


def group_batches(doc_parts: list[str], duplicates: str, batch_size: int = 512) -> Iterator[list[dict]]:
    """A group's kept documents in input order, in lists of `batch_size` rows."""
    removed = set(pq.read_table(duplicates, columns=["doc_id"]).column(0).to_pylist())
    for path in doc_parts:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=batch_size, columns=["doc_id", "text", "domain", "source"]):
            docs = [row for row in batch.to_pylist() if row["doc_id"] not in removed]
            if docs:
                yield docs


def window_group(doc_parts: list[str], duplicates: str, config: WindowsConfig, folder: Path) -> dict[str, Any]:
    """Map: one group's windows, numbered from 0 (skipped when the group is already done)."""
    done = read_done(folder)
    if done is not None:
        return {**done, "resumed": True}
    with attempt(folder):
        counts = pack_windows(group_batches(doc_parts, duplicates), folder, config)
    return {**mark_done(folder, counts), "resumed": False}


def _shifted(path: Path, offset: int) -> pa.Table:
    table = pq.read_table(path)
    ids = pc.add(table.column("window_id"), pa.scalar(offset, pa.int64()))
    return table.set_column(table.schema.get_field_index("window_id"), "window_id", ids)


def merge_windows(folders: list[Path], results: list[dict], out: Path, config: WindowsConfig) -> dict[str, Any]:
    """Barrier: global window ids and one token header over every group's parts."""
    parts, offset, numbered = [], 0, 0
    for folder, result in zip(folders, results):
        for part in result["parts"]:
            name = part_name(len(parts))
            link(folder / part["file"], out / name)
            parts.append({**part, "file": name})
        for path in part_files(folder, "windows"):
            if not pq.ParquetFile(path).metadata.num_rows:
                continue
            dst = out / f"windows-{numbered:05d}.parquet"
            link(path, dst) if offset == 0 else pq.write_table(_shifted(path, offset), dst, compression="zstd")
            numbered += 1
        offset += result["windows"]
    if not numbered:
        link(part_files(folders[0], "windows")[0], out / "windows-00000.parquet")
    first = results[0]
    dtype, width = np.dtype(first["dtype"]), config.seq_len + 1
    finish(out, dtype, width, parts)
    counts = {key: sum(r[key] for r in results) for key in SUMMED}
    same = {key: first[key] for key in ("seq_len", "dtype", "vocab_size", "eos_id", "tokenizer_sha256")}
    return {**counts, **same, "token_parts": max(1, len(parts))}
