"""`--engine ray` on a real local Ray cluster writes the same bytes as `--engine local`.

One small run each (a slice of the demo corpus cut into three input files, with an exact
duplicate, a near duplicate and a repeated id across files, so each barrier has work): every stage
folder's files (documents, dedup, windows parts, embeddings parts, router, assignments, shards,
cards) must have the same sha256 under both engines, and the Ray run's group tasks, embedder
actors, assignment parts (row groups shrunk to 16 windows, so there are several parts) and shard
copy parts (one per token part) must have run in at least two worker processes other than the
test's own.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from splitlm.assets import demo_corpus_path
from splitlm.core.ray_session import RAY_ENV
from splitlm.curate.cards.build import CardsConfig
from splitlm.curate.cluster import stage as cluster_stage
from splitlm.curate.cluster.kmeans import KMeansConfig
from splitlm.curate.cluster.stage import ClustersConfig
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.stage import EmbeddingsConfig
from splitlm.curate.engine.run import EngineConfig
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.pipeline import ClusterRunConfig, WindowsRunConfig, run_cluster
from splitlm.curate.shards import ShardsConfig
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.layout import STAGES
from splitlm.schemas.manifest import StageManifest

pytestmark = pytest.mark.ray  # starts a local Ray cluster (conftest: one at a time)

PART_MB = 0.004  # ~4 kB: one file group per input file, several token and vector parts
ASSIGN_GROUP_ROWS = 16  # assignment row groups (and so parts, with part_rows=1) of 16 windows: several parts


def _corpus(folder: Path) -> list[Path]:
    """Three JSONL files of demo documents, with cross-file duplicates of each kind."""
    docs = []
    with open(demo_corpus_path()) as fh:
        for line in fh:
            row = json.loads(line)
            if 300 < len(row["text"]) < 1500:
                docs.append(row)
            if len(docs) == 36:
                break
    assert len(docs) == 36
    near = dict(docs[3], id="near-copy", text=docs[3]["text"].rstrip() + " And one more closing word.")
    extra = [dict(docs[1], id="exact-copy"), near, dict(docs[20], text="A different text under a repeated id.")]
    files = []
    for i, chunk in enumerate((docs[:12], docs[12:24] + extra[:1], docs[24:] + extra[1:])):
        path = folder / f"part-{i}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in chunk))
        files.append(path)
    return files


def _config() -> ClusterRunConfig:
    return ClusterRunConfig(
        windows=WindowsRunConfig(ingest=IngestConfig(part_mb=PART_MB),
                                 windows=WindowsConfig(seq_len=63, val_fraction=0.1, part_mb=PART_MB)),
        embeddings=EmbeddingsConfig(embed=EmbedConfig(max_pieces=16), part_size=16, part_mb=PART_MB),
        clusters=ClustersConfig(kmeans=KMeansConfig(k=2, iters=5), part_rows=1),
        shards=ShardsConfig(val_min_windows=1),
        cards=CardsConfig(routing_sample=2, terms_sample=8),
    )


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RAY_ENV)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # the real MiniLM, twice, and a real Ray cluster: ~100 s on 2 shared cores
def test_ray_engine_writes_the_bytes_of_the_local_engine(tmp_path, ray_cluster, monkeypatch):
    monkeypatch.setattr(cluster_stage, "GROUP_ROWS", ASSIGN_GROUP_ROWS)  # read by the driver, passed to tasks
    inputs = _corpus(tmp_path)
    runs = {kind: tmp_path / kind for kind in ("local", "ray")}
    for kind, run in runs.items():
        start = time.perf_counter()
        run_cluster(inputs, run, _config(), engine=EngineConfig(kind))
        print(f"curate cluster --engine {kind}: {time.perf_counter() - start:.1f} s")  # reported, not asserted
    manifests = {kind: {s: StageManifest.read(run / s) for s in STAGES} for kind, run in runs.items()}
    for stage in STAGES:
        assert manifests["ray"][stage].parts == manifests["local"][stage].parts, stage
    local = manifests["local"]
    assert local["documents"].counts["documents_quarantined"] == {"duplicate_id": 1}
    assert local["dedup"].counts["duplicates_by_kind"] == {"exact": 1, "near": 1}
    windows = local["windows"].counts
    assert windows["token_parts"] > 2 and len(windows["tasks"]) == 3
    assert len(local["embeddings"].counts["vector_parts"]) > 2
    assert any(name.startswith("tokens-00002") for name in local["windows"].parts)
    ray_counts = {s: manifests["ray"][s].counts for s in ("documents", "dedup", "windows")}
    task_pids = {t["pid"] for counts in ray_counts.values() for t in counts["tasks"]}
    actor_pids = set(manifests["ray"]["embeddings"].counts["workers"])
    assert os.getpid() not in task_pids | actor_pids
    assert len(task_pids) >= 2 and len(actor_pids) >= 2, (task_pids, actor_pids)
    clusters = {kind: manifests[kind]["clusters"].counts for kind in runs}
    assert clusters["local"]["assignment_parts"] > 2
    assert [t["part"] for t in clusters["ray"]["tasks"]] == list(range(clusters["local"]["assignment_parts"]))
    assign_pids = {t["pid"] for t in clusters["ray"]["tasks"]}
    assert {t["pid"] for t in clusters["local"]["tasks"]} == {os.getpid()}
    assert os.getpid() not in assign_pids and len(assign_pids) >= 2, assign_pids
    copy_pids = {t["pid"] for t in manifests["ray"]["shards"].counts["tasks"]}
    assert len(manifests["ray"]["shards"].counts["tasks"]) == windows["token_parts"]
    assert os.getpid() not in copy_pids and len(copy_pids) >= 2, copy_pids
