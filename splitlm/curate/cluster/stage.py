"""The clusters stage: fit balanced k-means on the window embeddings, assign every window, save the router.

Writes `RUN/clusters/assignments-00000.parquet` (ASSIGNMENTS), `router.safetensors` + `router.json`.
Plain `faiss.Kmeans` runs on the same vectors with the same iterations for comparison, so the
manifest (and `curate cluster`'s summary) report balance, objective and time against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
from splitlm.curate.cluster.kmeans import (
    KMeansConfig,
    assign,
    assign_with_capacity,
    balance_stats,
    fit_balanced_kmeans,
)
from splitlm.curate.cluster.router import Router
from splitlm.curate.embed.stage import load_vectors
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.router import EmbedderSpec, RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)


@dataclass(frozen=True)
class ClustersConfig:
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    prefix_tokens: int = 32
    """Tokens of a document's prefix the router embeds by default (paper App. D: 32)."""

    def __post_init__(self):
        if self.prefix_tokens < 1:
            raise ConfigError(f"--prefix-tokens must be >= 1, got {self.prefix_tokens}")


def write_clusters(run: Path, out: Path, config: ClustersConfig, corpus_fingerprint: str,
                   advance=lambda n: None) -> dict[str, Any]:
    x_ND = load_vectors(run)
    cfg = config.kmeans
    if cfg.k > len(x_ND):
        raise ConfigError(f"--k {cfg.k} is larger than the number of windows ({len(x_ND)}): lower --k or add data")
    start = time.perf_counter()
    model = fit_balanced_kmeans(x_ND, cfg)
    if cfg.capacity_eps is not None:
        labels_N, dist_N = assign_with_capacity(x_ND, model.centroids_KD, model.biases_K, cfg.capacity_eps, cfg.chunk)
    else:
        labels_N, dist_N = assign(x_ND, model.centroids_KD, model.biases_K, cfg.chunk)
    ours_s = time.perf_counter() - start
    advance(len(x_ND))
    start = time.perf_counter()
    _, plain_labels_N, plain_dist_N = plain_faiss_kmeans(x_ND, cfg.k, cfg.iters, cfg.seed, cfg.sample_per_centroid)
    plain_s = time.perf_counter() - start
    table = pa.table({"window_id": np.arange(len(x_ND), dtype=np.int64), "cluster": labels_N.astype(np.int32),
                      "distance": dist_N.astype(np.float32)}, schema=ASSIGNMENTS)
    pq.write_table(table, out / "assignments-00000.parquet", compression="zstd")
    Router(model.centroids_KD, model.biases_K, router_spec(run, config, corpus_fingerprint)).save(out)
    ours, plain = balance_stats(labels_N, cfg.k), balance_stats(plain_labels_N, cfg.k)
    return {
        "k": cfg.k, "windows": len(x_ND), "sizes": ours.sizes_K.tolist(),
        "max_min": ours.max_min, "imbalance": ours.imbalance,
        "objective": float(np.mean(dist_N, dtype=np.float64)),
        "plain_faiss": {"sizes": plain.sizes_K.tolist(), "max_min": plain.max_min, "imbalance": plain.imbalance,
                        "objective": float(np.mean(plain_dist_N, dtype=np.float64)), "seconds": plain_s},
        "seconds": ours_s, "time_ratio_vs_plain": ours_s / max(plain_s, 1e-9),
    }


def router_spec(run: Path, config: ClustersConfig, corpus_fingerprint: str) -> RouterSpec:
    """The spec of the router this run's windows were assigned with: its embedder, tokenizer and prefix."""
    windows = StageManifest.read(run / "windows")
    embedder = StageManifest.read(run / "embeddings").counts["embedder"]
    return RouterSpec(k=config.kmeans.k, embedder=EmbedderSpec(**embedder), tokenizer=windows.config["tokenizer"],
                      tokenizer_sha256=windows.counts["tokenizer_sha256"], prefix_tokens=config.prefix_tokens,
                      corpus_fingerprint=corpus_fingerprint)
