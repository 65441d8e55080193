"""The clusters stage: fit balanced k-means on a sample of the window embeddings (a barrier, in the
driver), assign every window part by part (a map under the engine), save the router.

Writes `RUN/clusters/assignments-XXXXX.parquet` (ASSIGNMENTS, in window-id order, row groups of
`GROUP_ROWS`, a new part every `part_rows` rows), `router.safetensors` + `router.json`.
Each part is one engine task (`splitlm.curate.cluster.assign_parts.assign_part`: under
`--engine ray` a Ray task reading its row range of the memory-mapped vectors and writing its own
part file into `RUN/.work/clusters/<key>/`, where a rerun after a crash finds the finished ones); the
driver plans the parts and adds their sizes and per-row-group distance sums in
order, so every engine writes the same bytes and counts. `--capacity-eps` ranks every row's regret
at once, so the capped rule stays one pass in the driver (`assign_with_capacity` keeps labels,
distances and regrets: 12 bytes per window).
Memory: the fit reads its samples (`fit_balanced_kmeans`); a part task reads `chunk` rows of
vectors at a time and holds one row group of labels, whatever N is. Labels do not depend on the
chunk size (`splitlm.curate.cluster.kmeans` re-scores near-ties exactly).
Plain `faiss.Kmeans` (same iterations) runs on the fit sample only, the same seeded
`k * sample_per_centroid` rows our labels are measured on, so the manifest's `plain_faiss` block
(`"on": "fit sample"`) compares balance and objective on that sample, and fit times.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.errors import ConfigError
from splitlm.core.hashing import sha256_file, sha256_json
from splitlm.core.stage import MANIFEST, work_dir
from splitlm.curate.cluster.assign_parts import assign_part, part_name, part_size, plan_parts
from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
from splitlm.curate.cluster.kmeans import (
    KMeansConfig,
    assign_with_capacity,
    balance_stats,
    fit_balanced_kmeans,
    fit_with_labels,
)
from splitlm.curate.cluster.router import Router
from splitlm.curate.embed.stage import load_vectors
from splitlm.curate.engine.groups import link, remove_scratch
from splitlm.curate.engine.run import Engine
from splitlm.curate.rows import SlicedRows, take_rows
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.router import EmbedderSpec, RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS

ALGORITHM = 5  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
# 2: balanced k-means with Newton prices and group shifts; assignments in parts; plain faiss on the fit sample
# 3: the fit also stops once its objective has not improved for 2 iterations
# 4: prices solved on subsamples first (fit iterations on ~128 rows a cluster; calibration on ~192 a cluster,
#    then 4x more, then all rows); no re-solve after the fit
# 5: the final prices to within 1% of n/K (was 0.5%)

GROUP_ROWS = 65536  # assignment rows per Parquet row group (fixed: output bytes never depend on `chunk`)


@dataclass(frozen=True)
class ClustersConfig:
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    prefix_tokens: int = 32
    """Tokens of a document's prefix the router embeds by default (paper App. D: 32)."""
    part_rows: int = 8 * 1024 * 1024
    """Assignment rows per Parquet part (~64 MB), rounded up to a multiple of GROUP_ROWS."""
    compare_plain: bool = True
    """Run plain faiss k-means on the fit sample for the manifest's comparison."""

    def __post_init__(self):
        if self.prefix_tokens < 1:
            raise ConfigError(f"--prefix-tokens must be >= 1, got {self.prefix_tokens}")
        if self.part_rows < 1:
            raise ConfigError(f"part_rows must be >= 1, got {self.part_rows}")


class AssignmentWriter:
    """ASSIGNMENTS rows in window-id order: fixed row groups, a new part file every `part_rows` rows."""

    def __init__(self, out: Path, part_rows: int):
        self.out, self.part_rows = out, part_size(part_rows, GROUP_ROWS)
        self.labels: list[np.ndarray] = []
        self.dist: list[np.ndarray] = []
        self.buffered = 0
        self.rows = 0
        self.part = 0
        self.writer: pq.ParquetWriter | None = None
        self.dist_sum = 0.0

    def write(self, labels: np.ndarray, dist: np.ndarray) -> None:
        self.labels.append(labels.astype(np.int32))
        self.dist.append(dist.astype(np.float32))
        self.buffered += len(labels)
        while self.buffered >= GROUP_ROWS:
            self._flush(GROUP_ROWS)

    def _flush(self, n: int) -> None:
        labels, dist = np.concatenate(self.labels), np.concatenate(self.dist)
        self.labels, self.dist, self.buffered = [labels[n:]], [dist[n:]], len(labels) - n
        labels, dist = labels[:n], dist[:n]
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.out / f"assignments-{self.part:05d}.parquet", ASSIGNMENTS,
                                           compression="zstd")
        ids = np.arange(self.rows, self.rows + n, dtype=np.int64)
        self.writer.write_table(pa.table({"window_id": ids, "cluster": labels, "distance": dist}, schema=ASSIGNMENTS),
                                row_group_size=GROUP_ROWS)
        self.dist_sum += float(np.sum(dist, dtype=np.float64))  # per fixed group: independent of `chunk`
        self.rows += n
        if self.rows % self.part_rows == 0:
            self.writer.close()
            self.writer, self.part = None, self.part + 1

    def close(self) -> None:
        if self.buffered:
            self._flush(self.buffered)
        if self.writer is not None:
            self.writer.close()
        elif self.rows == 0:
            pq.write_table(ASSIGNMENTS.empty_table(), self.out / "assignments-00000.parquet")


def write_clusters(run: Path, out: Path, config: ClustersConfig, corpus_fingerprint: str,
                   advance=lambda n: None, engine: Engine | None = None) -> dict[str, Any]:
    x_ND = load_vectors(run)
    cfg = config.kmeans
    n = len(x_ND)
    if cfg.k > n:
        raise ConfigError(f"--k {cfg.k} is larger than the number of windows ({n}): lower --k or add data")
    start = time.perf_counter()
    if cfg.capacity_eps is None:  # reads its samples (touched pages are not kept); labels when it scored all rows
        model, labels_N = fit_with_labels(SlicedRows(x_ND), cfg)
    else:
        model, labels_N = fit_balanced_kmeans(SlicedRows(x_ND), cfg), None
    fit_s = time.perf_counter() - start
    sample_S = _comparison_sample(n, cfg)
    if cfg.capacity_eps is not None:  # the cap ranks all rows at once (a barrier): labels, distances, regrets
        sizes_K, dist_sum, sample_labels, sample_dist, tasks = _assign_capped(x_ND, model, config, out, sample_S)
        advance(n)
    else:  # the map: one engine task per part (`assign_parts`), merged here in part order
        sizes_K, dist_sum, sample_labels, sample_dist, tasks = _assign_parts(run, out, model, config, n, sample_S,
                                                                             engine or Engine(), advance, labels_N)
    ours_s = time.perf_counter() - start
    Router(model.centroids_KD, model.biases_K, router_spec(run, config, corpus_fingerprint)).save(out)
    ours = balance_stats(sizes_K)
    counts: dict[str, Any] = {
        "k": cfg.k, "windows": n, "sizes": ours.sizes_K.tolist(), "max_min": ours.max_min,
        "imbalance": ours.imbalance, "objective": dist_sum / max(n, 1),
        "fit_seconds": fit_s, "seconds": ours_s, "assignment_parts": len(list(out.glob("assignments-*.parquet"))),
    }
    if tasks:
        counts["tasks"] = tasks
    if config.compare_plain:
        sample_rows = take_rows(x_ND, sample_S, np.float32)  # the fit sample's rows, read once more
        counts["plain_faiss"] = _compare(sample_rows, sample_labels, sample_dist, cfg, fit_s)
        counts["time_ratio_vs_plain"] = counts["plain_faiss"]["time_ratio"]
    return counts


def _assign_capped(x_ND, model, config: ClustersConfig, out: Path, sample_S: np.ndarray):
    """The capped rule over all rows in this process, written by one `AssignmentWriter`."""
    cfg = config.kmeans
    writer = AssignmentWriter(out, config.part_rows)
    labels_N, dist_N = assign_with_capacity(SlicedRows(x_ND), model.centroids_KD, model.biases_K,
                                            cfg.capacity_eps, cfg.chunk)
    for lo in range(0, len(labels_N), GROUP_ROWS):
        writer.write(labels_N[lo : lo + GROUP_ROWS], dist_N[lo : lo + GROUP_ROWS])
    writer.close()
    sizes_K = np.bincount(labels_N, minlength=cfg.k).astype(np.int64)
    return sizes_K, writer.dist_sum, labels_N[sample_S], dist_N[sample_S], []


def _assign_parts(run: Path, out: Path, model, config: ClustersConfig, n: int, sample_S: np.ndarray,
                  engine: Engine, advance, labels_N: np.ndarray | None):
    """One `assign_part` task per part; sizes, distance sums and sample labels merged in part order.
    `labels_N` (the fit's labels of every row, when its calibration scored them all) spares the tasks
    the scoring: they write those labels, which are `assign`'s."""
    cfg = config.kmeans
    group_rows = GROUP_ROWS  # read at call time (a test shrinks it for several parts) and passed to the tasks
    parts = plan_parts(n, config.part_rows, group_rows)
    scratch = _scratch(run, model, config, n, group_rows)
    items = [(str(run), str(scratch), p, lo, hi, model.centroids_KD, model.biases_K, cfg.chunk, group_rows,
              sample_S[(sample_S >= lo) & (sample_S < hi)], None if labels_N is None else labels_N[lo:hi])
             for p, lo, hi in parts]
    results = engine.map(assign_part, items, lambda i, r: advance(r["rows"]))
    sizes_K, dist_sum = np.zeros(cfg.k, dtype=np.int64), 0.0
    for r in results:
        sizes_K += r["sizes"]
        for s in r["group_sums"]:  # in window order, as one writer adds them
            dist_sum += s
    sample_labels = np.concatenate([r["sample_labels"] for r in results])
    sample_dist = np.concatenate([r["sample_dist"] for r in results])
    for p, _, _ in parts:  # the finished parts into the stage folder, then the scratch goes
        link(scratch / f"part-{p:05d}" / part_name(p), out / part_name(p))
    remove_scratch(scratch)
    tasks = [{"part": r["part"], "pid": r["pid"], "resumed": r["resumed"]} for r in results]
    return sizes_K, dist_sum, sample_labels, sample_dist, tasks


def _scratch(run: Path, model, config: ClustersConfig, n: int, group_rows: int) -> Path:
    """`RUN/.work/clusters/<key>/`: finished parts of an interrupted assignment, keyed by everything
    that decides their bytes (the model, the vectors' manifest, the part plan), so a rerun reuses only
    parts of this very assignment."""
    key = sha256_json([hashlib.sha256(model.centroids_KD.tobytes() + model.biases_K.tobytes()).hexdigest(),
                       sha256_file(run / "embeddings" / MANIFEST), n, config.part_rows, group_rows, ALGORITHM])
    return work_dir(run, "clusters", key)


def _comparison_sample(n: int, cfg: KMeansConfig) -> np.ndarray:
    """Sorted row ids of the comparison sample: k * sample_per_centroid rows drawn with the seed."""
    m = cfg.k * cfg.sample_per_centroid
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(cfg.seed).choice(n, m, replace=False)).astype(np.int64)


def _compare(x_SD: np.ndarray, ours_S: np.ndarray, ours_dist_S: np.ndarray, cfg: KMeansConfig,
             fit_s: float) -> dict[str, Any]:
    """Plain faiss k-means fitted and assigned on the sample; ours measured on the same rows."""
    start = time.perf_counter()
    _, plain_S, plain_dist_S = plain_faiss_kmeans(x_SD, cfg.k, cfg.iters, cfg.seed, cfg.sample_per_centroid)
    plain_s = time.perf_counter() - start
    ours, plain = balance_stats(ours_S, cfg.k), balance_stats(plain_S, cfg.k)
    return {"on": "fit sample", "rows": len(x_SD), "sizes": plain.sizes_K.tolist(), "max_min": plain.max_min,
            "imbalance": plain.imbalance, "objective": float(np.mean(plain_dist_S, dtype=np.float64)),
            "seconds": plain_s, "ours_max_min": ours.max_min,
            "ours_objective": float(np.mean(ours_dist_S, dtype=np.float64)),
            "time_ratio": fit_s / max(plain_s, 1e-9)}


def router_spec(run: Path, config: ClustersConfig, corpus_fingerprint: str) -> RouterSpec:
    """The spec of the router this run's windows were assigned with: its embedder, tokenizer and prefix."""
    windows = StageManifest.read(run / "windows")
    embedder = StageManifest.read(run / "embeddings").counts["embedder"]
    return RouterSpec(k=config.kmeans.k, embedder=EmbedderSpec(**embedder), tokenizer=windows.config["tokenizer"],
                      tokenizer_sha256=windows.counts["tokenizer_sha256"], prefix_tokens=config.prefix_tokens,
                      corpus_fingerprint=corpus_fingerprint)
