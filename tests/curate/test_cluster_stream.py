"""The clusters stage streams: same seed -> same bytes, whatever the chunk size; every window is assigned.

A hand-built run (no model): clustered unit vectors in `embeddings/vectors.npy` with the manifests
the stage reads. 70,000 rows, so the assignment crosses a Parquet part boundary (parts are rounded up
to 65,536 rows) and several chunks.
"""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.core.parts import part_files
from splitlm.curate.cluster.kmeans import KMeansConfig
from splitlm.curate.cluster.stage import ClustersConfig, write_clusters
from splitlm.curate.engine.run import Engine
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.router import EmbedderSpec

N, D, K = 70_000, 16, 4
EMBEDDER = EmbedderSpec(model_id="synthetic", weights_sha256="0", mode="truncate", precision="fp32", max_pieces=256,
                        dimension=D, pooling="mean", normalized=True)


def vector_run(root, n=N, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, D))
    x = centers[rng.integers(0, 6, n)] + 0.6 * rng.normal(size=(n, D))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    for stage, config, counts in (
        ("windows", {"tokenizer": "gpt2"}, {"tokenizer_sha256": "0", "windows": n}),
        ("embeddings", {"storage": "float32"},
         {"windows": n, "dimension": D, "storage": "float32", "embedder": EMBEDDER.model_dump()}),
    ):
        (root / stage).mkdir(parents=True)
        (root / stage / "manifest.json").write_text(StageManifest(
            stage=stage, config=config, config_hash="0", input_fingerprint="0", counts=counts).model_dump_json())
    np.save(root / "embeddings" / "vectors.npy", x)
    return root


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    return vector_run(tmp_path_factory.mktemp("v") / "run")


def cluster(run, out_name, chunk):
    out = run / out_name
    out.mkdir()
    config = ClustersConfig(kmeans=KMeansConfig(k=K, iters=5, chunk=chunk), part_rows=1)
    return out, write_clusters(run, out, config, "corpus")


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_whatever_the_chunk(vectors):
    a, counts_a = cluster(vectors, "clusters-a", 65_536)
    b, counts_b = cluster(vectors, "clusters-b", 4_999)  # chunks that straddle row groups and parts
    assert [p.name for p in part_files(a, "assignments")] == ["assignments-00000.parquet", "assignments-00001.parquet"]
    assert files(a) == files(b)
    timings = {"seconds", "fit_seconds", "time_ratio_vs_plain"}
    strip = lambda c: {k: v for k, v in c.items() if k not in timings and k != "plain_faiss"}  # noqa: E731
    assert strip(counts_a) == strip(counts_b)
    assert {k: v for k, v in counts_a["plain_faiss"].items() if k not in ("seconds", "time_ratio")} == \
        {k: v for k, v in counts_b["plain_faiss"].items() if k not in ("seconds", "time_ratio")}


def test_every_window_is_assigned_once_in_order(vectors):
    out, counts = cluster(vectors, "clusters-c", 20_000)
    table = pq.read_table(list(part_files(out, "assignments")))
    assert table.column("window_id").to_pylist() == list(range(N))
    labels = table.column("cluster").to_numpy()
    assert np.bincount(labels, minlength=K).tolist() == counts["sizes"] and sum(counts["sizes"]) == N
    assert counts["windows"] == N and counts["assignment_parts"] == 2
    assert counts["objective"] == pytest.approx(float(np.mean(table.column("distance").to_numpy(), dtype=np.float64)))
    plain = counts["plain_faiss"]
    assert (plain["on"], plain["rows"]) == ("fit sample", K * KMeansConfig().sample_per_centroid)
    assert sum(plain["sizes"]) == plain["rows"]


class _CrashAfterFirst(Engine):
    """The local engine, dying after the first task of a map finished (as a killed run would)."""

    def map(self, fn, items, done=lambda i, r: None):
        done(0, fn(*items[0]))
        raise KeyboardInterrupt("killed")


def test_an_interrupted_assignment_resumes_from_its_finished_parts(vectors):
    config = ClustersConfig(kmeans=KMeansConfig(k=K, iters=5), part_rows=1)
    out = vectors / "clusters-killed"
    out.mkdir()
    with pytest.raises(KeyboardInterrupt):
        write_clusters(vectors, out, config, "corpus", engine=_CrashAfterFirst())
    shutil.rmtree(out)  # the stage runner drops a failed stage's partial folder; the scratch stays
    out.mkdir()
    counts = write_clusters(vectors, out, config, "corpus")
    assert [t["resumed"] for t in counts["tasks"]] == [True, False]
    fresh, _ = cluster(vectors, "clusters-fresh", 65_536)
    assert files(out) == files(fresh)
    assert not (vectors / ".work").exists()  # the scratch is gone once the stage finished
