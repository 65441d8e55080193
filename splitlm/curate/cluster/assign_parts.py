"""The clusters stage's map: assign one part's row range of the window vectors and write its part file.

`plan_parts(n, part_rows, group_rows)` cuts the N windows into parts of whole row groups;
`assign_part` (one engine task per part, run anywhere that sees the run folder) reads its rows
from the memory-mapped vectors `chunk` rows at a time, applies the router rule
(`splitlm.curate.cluster.kmeans.assign`: argmin ||x - c||^2 + b_c, chunk-independent), and writes
`assignments-XXXXX.parquet` (ASSIGNMENTS, row groups of `group_rows`) into its own scratch folder,
finished by `done.json` written last, so a rerun after a crash redoes only the parts without one
(the driver keys the scratch by the model and the vectors, so stale parts are never reused). It returns the
part's cluster sizes, the float64 distance sum of each row group (the driver adds them in order,
so the objective has the same bits on any engine), and the labels and distances of the
comparison-sample rows that fall in the part.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.atomic import atomic_path
from splitlm.curate.cluster.kmeans import assign
from splitlm.curate.embed.stage import load_vectors
from splitlm.curate.engine.groups import attempt, mark_done, read_done
from splitlm.curate.rows import row_chunks
from splitlm.schemas.tables import ASSIGNMENTS

RESULT = "result.npz"  # a finished part's sizes, distance sums and sample rows (numbers only, no pickle)


def part_name(part: int) -> str:
    return f"assignments-{part:05d}.parquet"


def part_size(part_rows: int, group_rows: int) -> int:
    """Rows per part: `part_rows` rounded up to whole row groups (at least one)."""
    return max(group_rows, math.ceil(part_rows / group_rows) * group_rows)


def plan_parts(n: int, part_rows: int, group_rows: int) -> list[tuple[int, int, int]]:
    """(part, lo, hi) row ranges covering [0, n), in order."""
    size = part_size(part_rows, group_rows)
    return [(p, lo, min(lo + size, n)) for p, lo in enumerate(range(0, n, size))]


def row_distances(x_CD: np.ndarray, centroids_KD: np.ndarray, labels_C: np.ndarray, block: int = 4096) -> np.ndarray:
    """float32 ||x/|x| - c_label||^2 row by row in float64: the same bits in any chunk (a GEMM's are not)."""
    out = np.empty(len(x_CD), dtype=np.float32)
    c_KD = centroids_KD.astype(np.float64)
    for lo in range(0, len(x_CD), block):
        x_bD = x_CD[lo : lo + block].astype(np.float64)
        x_bD /= np.maximum(np.sqrt((x_bD * x_bD).sum(1, keepdims=True)), 1e-12)
        x_bD -= c_KD[labels_C[lo : lo + block]]
        out[lo : lo + block] = (x_bD * x_bD).sum(1)
    return out


def assign_part(run: str, scratch: str, part: int, lo: int, hi: int, centroids_KD: np.ndarray, biases_K: np.ndarray,
                chunk: int, group_rows: int, sample_S: np.ndarray, labels_R: np.ndarray | None = None) -> dict[str, Any]:
    """Assign rows [lo, hi) and write part `part` into `scratch/part-PPPPP/` (skipped when that is done);
    `sample_S` are the comparison-sample row ids in [lo, hi). `labels_R` (the rows' labels, already
    computed by the fit) skips the scoring; distances are computed here."""
    folder = Path(scratch) / f"part-{part:05d}"
    done = read_done(folder)
    if done is not None:
        with np.load(folder / RESULT, allow_pickle=False) as saved:
            return {"part": part, "rows": hi - lo, "sizes": saved["sizes"], "group_sums": saved["group_sums"].tolist(),
                    "sample_labels": saved["sample_labels"], "sample_dist": saved["sample_dist"],
                    "pid": done["pid"], "resumed": True}
    x_ND = load_vectors(Path(run))
    k = len(centroids_KD)
    sizes_K = np.zeros(k, dtype=np.int64)
    group_sums: list[float] = []
    sample_labels, sample_dist = [], []
    with attempt(folder), pq.ParquetWriter(folder / part_name(part), ASSIGNMENTS, compression="zstd") as writer:
        for glo in range(lo, hi, group_rows):
            ghi = min(glo + group_rows, hi)
            labels, dists = [], []
            for start, x_CD in row_chunks(x_ND, chunk, glo, ghi, dtype=np.float32):
                if labels_R is None:
                    labels_C, _ = assign(x_CD, centroids_KD, biases_K, chunk)
                else:
                    labels_C = labels_R[start - lo : start - lo + len(x_CD)]
                labels.append(labels_C.astype(np.int32))
                dists.append(row_distances(x_CD, centroids_KD, labels_C).astype(np.float32))
            labels_G, dist_G = np.concatenate(labels), np.concatenate(dists)
            ids = np.arange(glo, ghi, dtype=np.int64)
            writer.write_table(pa.table({"window_id": ids, "cluster": labels_G, "distance": dist_G},
                                        schema=ASSIGNMENTS), row_group_size=group_rows)
            group_sums.append(float(np.sum(dist_G, dtype=np.float64)))
            sizes_K += np.bincount(labels_G, minlength=k)
            mine = sample_S[(sample_S >= glo) & (sample_S < ghi)] - glo
            sample_labels.append(labels_G[mine])
            sample_dist.append(dist_G[mine])
    result = {"sizes": sizes_K, "group_sums": np.array(group_sums, np.float64),
              "sample_labels": np.concatenate(sample_labels), "sample_dist": np.concatenate(sample_dist)}
    with atomic_path(folder / RESULT) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result)
    done = mark_done(folder, {"part": part})  # last: the part counts as finished only now
    return {**result, "group_sums": group_sums, "part": part, "rows": hi - lo, "pid": done["pid"], "resumed": False}
