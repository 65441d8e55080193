"""The shards stage's token copy as engine maps: per window part, then per cluster.

`copy_part` (one task per row range of the windows' token array, normally one per token part)
reads its rows `chunk` at a time and appends each row to a piece file of its destination split
(`SCRATCH/part-PPPPP/split-DDDDD.bin`, d = 2 * cluster + val), in window-id order; destinations
are taken `open_clusters` clusters per pass, so open files stay bounded for any K. A part's folder is
finished by `done.json`, written last: a rerun after a crash copies only the parts without one (the
scratch, `RUN/.work/shards/<key>/`, is keyed by the destinations and the windows, so stale pieces are
never reused).
`merge_cluster` (one task per cluster, the barrier that merges a cluster's shard parts) joins the
pieces of its two splits in part order into `tokens.bin` and writes `tokens.json` with its sha256:
the same bytes as one process copying every window in id order. Tasks read and write the run
folder themselves (a shared filesystem under Ray); the driver plans and passes each task only its
slice of the destination array.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import SchemaError
from splitlm.curate.engine.groups import attempt, mark_done, read_done, remove_scratch
from splitlm.curate.rows import row_chunks
from splitlm.schemas.layout import cluster_name
from splitlm.schemas.tokens import TokenArray, write_header

BLOCK = 1 << 20  # bytes per read when joining pieces


def split_folder(out: Path, d: int, k: int) -> Path:
    return Path(out) / cluster_name(d // 2, k) / ("val" if d % 2 else "train")


def piece_path(scratch: Path, part: int, d: int) -> Path:
    return Path(scratch) / f"part-{part:05d}" / f"split-{d:05d}.bin"


def plan_copy_parts(tokens: TokenArray) -> list[tuple[int, int, int]]:
    """(part, lo, hi): the token array's own files as row ranges (one range for a one-file array)."""
    bounds = np.cumsum([0] + [rows for _, rows, _ in tokens.header.files()])
    return [(p, int(lo), int(hi)) for p, (lo, hi) in enumerate(itertools.pairwise(bounds)) if hi > lo]


def copy_part(windows: str, scratch: str, part: int, lo: int, hi: int, dest: np.ndarray, k: int, chunk: int,
              open_clusters: int) -> dict[str, Any]:
    """Rows [lo, hi) appended to their split's piece file; `dest` is the destinations of rows [lo, hi).
    Skipped when the part's folder is done (a rerun after a crash); a failed try leaves nothing."""
    folder = Path(scratch) / f"part-{part:05d}"
    done = read_done(folder)
    if done is not None:
        return {"part": part, "rows": hi - lo, "pid": done["pid"], "resumed": True}
    with attempt(folder):
        _copy_rows(TokenArray(windows), Path(scratch), part, lo, hi, dest, k, chunk, open_clusters)
    return {"part": part, "rows": hi - lo, "pid": mark_done(folder, {"part": part})["pid"], "resumed": False}


def _copy_rows(tokens: TokenArray, scratch: Path, part: int, lo: int, hi: int, dest: np.ndarray, k: int, chunk: int,
               open_clusters: int) -> None:
    for g in range(0, k, open_clusters):
        ds = range(2 * g, 2 * min(g + open_clusters, k))
        with ExitStack() as stack:
            files: dict[int, Any] = {}
            for start, rows in row_chunks(tokens, chunk, lo, hi):
                d_C = dest[start - lo : start - lo + len(rows)]
                mine = np.flatnonzero((d_C >= ds.start) & (d_C < ds.stop))
                order = mine[np.argsort(d_C[mine], kind="stable")]
                bounds = np.searchsorted(d_C[order], np.arange(ds.start, ds.stop + 1))
                for d, a, b in zip(ds, bounds[:-1], bounds[1:]):
                    if b > a:
                        if d not in files:
                            files[d] = stack.enter_context(open(piece_path(scratch, part, d), "wb"))
                        files[d].write(rows[order[a:b]].tobytes())


def merge_cluster(out: str, scratch: str, parts: int, c: int, k: int, dtype: str, width: int,
                  rows: tuple[int, int]) -> dict[str, Any]:
    """Cluster c's train and val `tokens.bin` joined from the parts' pieces, with their headers."""
    for d, n in zip((2 * c, 2 * c + 1), rows):
        folder = split_folder(Path(out), d, k)
        digest = hashlib.sha256()
        with atomic_path(folder / "tokens.bin") as tmp, open(tmp, "wb") as dst:
            for p in range(parts):
                piece = piece_path(Path(scratch), p, d)
                if not piece.exists():
                    continue
                with open(piece, "rb") as src:
                    while block := src.read(BLOCK):
                        dst.write(block)
                        digest.update(block)
        if (folder / "tokens.bin").stat().st_size != n * width * np.dtype(dtype).itemsize:
            raise SchemaError(f"{folder / 'tokens.bin'}: its pieces in {scratch} do not add up to {n} rows; rerun")
        write_header(folder, np.dtype(dtype), n, width, digest.hexdigest())
    return {"cluster": c, "pid": os.getpid()}


def remove_pieces(scratch: Path) -> None:
    remove_scratch(scratch)
