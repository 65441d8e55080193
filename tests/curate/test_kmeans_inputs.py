"""Balanced k-means inputs: row-sampled reads (memmaps at 10^8 rows), flags in config errors, tiny K=101."""

from __future__ import annotations

import numpy as np
import pytest

from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
from splitlm.curate.cluster.kmeans import (
    KMeansConfig,
    assign,
    balance_stats,
    fit_and_assign,
    fit_balanced_kmeans,
)


class Rows:
    """An array-like of rows that records every read and cannot be turned into one array at once."""

    def __init__(self, x_ND: np.ndarray):
        self.x_ND, self.shape, self.ndim, self.reads = x_ND, x_ND.shape, x_ND.ndim, []

    def __len__(self) -> int:
        return len(self.x_ND)

    def __getitem__(self, idx):
        rows = self.x_ND[idx]
        self.reads.append(len(rows))
        return rows

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read at once")


def blobs(n: int, d: int = 16, modes: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means_MD = rng.standard_normal((modes, d))
    x_ND = means_MD[rng.integers(modes, size=n)] + rng.standard_normal((n, d)) * 0.3
    return x_ND.astype(np.float32)


def test_fit_and_plain_baseline_read_samples_and_chunks_not_all_rows(tmp_path):
    n, k, per = 20_000, 4, 256
    path = tmp_path / "vectors.npy"
    np.save(path, blobs(n))
    mm = np.load(path, mmap_mode="r")
    rows = Rows(mm)
    cfg = KMeansConfig(k=k, iters=4, sample_per_centroid=per, calibrate_per_centroid=1024, chunk=3000)
    model = fit_balanced_kmeans(rows, cfg)
    assert max(rows.reads) <= max(k * per, cfg.chunk) and sum(rows.reads) == k * per + k * 1024
    assert model.n_fit == k * per and model.n_calibrate == k * 1024
    rows.reads.clear()
    labels_N, _ = assign(rows, model.centroids_KD, model.biases_K, cfg.chunk)
    assert max(rows.reads) <= cfg.chunk and sum(rows.reads) == n
    assert balance_stats(labels_N, k).max_min <= 1.10  # calibrated on a fifth of the rows
    rows.reads.clear()
    _, plain_N, _ = plain_faiss_kmeans(rows, k, iters=4, seed=0, sample_per_centroid=per, chunk=3000)
    assert max(rows.reads) <= max(k * per, 3000) and sum(rows.reads) == k * per + n and len(plain_N) == n
    same_N, _ = assign(np.asarray(mm), model.centroids_KD, model.biases_K, 7000)  # in memory, other chunks
    assert same_N.tobytes() == labels_N.tobytes()


@pytest.mark.parametrize(("field", "value", "named"), [
    ("sample_per_centroid", 0, "--sample-per-centroid 0"),
    ("k", 0, "--k 0"),
    ("iters", 0, "--iters 0"),
    ("capacity_eps", -0.5, "--capacity-eps -0.5"),
    ("chunk", 0, "KMeansConfig.chunk 0"),
    ("calibrate_per_centroid", -1, "KMeansConfig.calibrate_per_centroid -1"),
    ("sample_per_centroid", 2.5, "--sample-per-centroid 2.5"),
])
def test_invalid_config_names_the_command_line_flag(field, value, named):
    with pytest.raises(ConfigError) as err:
        KMeansConfig(**{field: value})
    assert str(err.value).startswith(named) and "\n" not in str(err.value)


def test_k101_on_600_rows_gives_every_cluster_its_share():
    """The K=101 pipeline test's shape: ~6 rows a cluster, so one row off is 17%; each cluster must hold
    at least 5 so that the validation floor can take one and leave training rows."""
    x_ND = blobs(606, d=32, modes=4, seed=1)
    model, labels_N, _ = fit_and_assign(x_ND, KMeansConfig(k=101))
    sizes = np.bincount(labels_N, minlength=101)
    assert sizes.min() >= 5 and sizes.max() <= 7, sorted(sizes)
    assert (assign(x_ND, model.centroids_KD, model.biases_K)[0] == labels_N).all()
