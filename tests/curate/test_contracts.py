"""Contracts between stages and the commands that read them, on one small clustered demo run.

The shared run (K = 3, seq_len 63, router prefix 8 tokens, not the default 32) is built once per
module with the real MiniLM; tests that change it work on a copy. The algorithm-version test needs
no embedder and builds its own windows-only run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.core.progress import Progress
from splitlm.curate.cluster.kmeans import KMeansConfig
from splitlm.curate.cluster.stage import ClustersConfig
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.stage import EmbeddingsConfig
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.pipeline import ClusterRunConfig, WindowsRunConfig, run_cluster, run_windows
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.manifest import StageManifest

CURATE_BIN = Path(sys.executable).parent / "curate"
PREFIX = 8  # the router's prefix length in this module: anything but the default 32
DOMAINS = {"tiny": 8, "code": 8, "wiki": 8, "c4": 8}  # documents per domain
WORDS = 120  # each document cut to its first words: ~2-3 windows of 64 tokens
SKIPPED = "{}: up to date, skipped"


def demo_slice(out: Path, per_domain: dict[str, int], words: int, skip: int = 0) -> Path:
    """Documents of the demo corpus with at least `words` words, cut to their first `words`.

    `skip` passes over that many qualifying documents per domain first (to get unseen ones).
    """
    from splitlm.assets import demo_corpus_path

    got = {d: 0 for d in per_domain}
    seen = {d: 0 for d in per_domain}
    with open(demo_corpus_path()) as src, open(out, "w") as dst:
        for line in src:
            doc = json.loads(line)
            d, text = doc["domain"], doc["text"].split()
            if d not in per_domain or got[d] >= per_domain[d] or len(text) < words:
                continue
            seen[d] += 1
            if seen[d] <= skip:
                continue
            got[d] += 1
            dst.write(json.dumps({"id": doc["id"], "domain": d, "text": " ".join(text[:words])}) + "\n")
    assert got == per_domain, f"the demo corpus is short of documents: {got}"
    return out


def cluster_config(k: int = 3, embed: EmbedConfig | None = None) -> ClusterRunConfig:
    return ClusterRunConfig(
        windows=WindowsRunConfig(ingest=IngestConfig(domain_field="domain"),
                                 windows=WindowsConfig(seq_len=63, val_fraction=0.1)),
        embeddings=EmbeddingsConfig(embed=embed or EmbedConfig()),
        clusters=ClustersConfig(kmeans=KMeansConfig(k=k), prefix_tokens=PREFIX),
    )


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("inspect", "export"))
    return dest


def assignments(run: Path) -> np.ndarray:
    return pq.read_table(run / "clusters" / "assignments-00000.parquet").column("cluster").to_numpy()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return demo_slice(tmp_path_factory.mktemp("corpus") / "demo.jsonl", DOMAINS, WORDS)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("contracts") / "run"
    summary = run_cluster([corpus], out, cluster_config())
    assert summary.k == 3 and 60 <= summary.windows <= 300, summary.windows
    return out


@pytest.mark.slow
def test_router_prefix_is_honoured_end_to_end(run, corpus, tmp_path):
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.inspect.stage import InspectConfig, run_inspect

    assert json.loads((run / "clusters" / "router.json").read_text())["prefix_tokens"] == PREFIX
    router = Router.load(run)
    assert router.prefix_tokens == PREFIX
    for c in range(3):
        card = json.loads((run / "cards" / f"cluster-{c:02d}.json").read_text())
        assert card["routing_prefix_tokens"] == PREFIX
        assert f"| {PREFIX}-token routing accuracy" in (run / "cards" / f"cluster-{c:02d}.md").read_text()

    # New documents (not the ones clustered), whole, so the prefix cut matters.
    fresh = demo_slice(tmp_path / "fresh.jsonl", {"tiny": 6, "code": 6, "wiki": 6, "c4": 6}, 150, skip=8)
    proc = subprocess.run([str(CURATE_BIN), "route", str(run), str(fresh), "--out", str(tmp_path / "routed.jsonl")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "routed.jsonl").read_text().splitlines()]
    texts = [json.loads(line)["text"] for line in fresh.read_text().splitlines()]
    assert len(rows) == len(texts) == 24
    cli = np.array([r["cluster"] for r in rows])
    np.testing.assert_array_equal(cli, router.route(texts, prefix_tokens=PREFIX).clusters)
    np.testing.assert_array_equal(cli, router.route(texts).clusters)  # None means the router's own
    # Both would pass unnoticed if the router's prefix were ignored: the default 32 and the whole document
    # route some of these documents elsewhere.
    for other in (32, 2048):
        assert (cli != router.route(texts, prefix_tokens=other).clusters).any(), f"{PREFIX} and {other} agree"

    summary = run_inspect(run, InspectConfig(split="all", sample=24, prefix_lengths=(4, 16)))
    assert summary["router_prefix_tokens"] == PREFIX
    assert summary["config"]["prefix_lengths"] == [4, PREFIX, 16]
    assert [r["prefix_tokens"] for r in summary["routing"]["rows"]] == [4, PREFIX, 16]
    on_disk = json.loads((run / "inspect" / "summary.json").read_text())
    assert on_disk["router_prefix_tokens"] == PREFIX


@pytest.mark.slow
def test_weights_mismatch_is_a_schema_error(run, tmp_path):
    from splitlm.curate.cluster.router import Router
    from splitlm.core.errors import SchemaError

    copy = tmp_path / "run"
    shutil.copytree(run / "clusters", copy / "clusters")
    spec_path = copy / "clusters" / "router.json"
    spec = json.loads(spec_path.read_text())
    spec["embedder"]["weights_sha256"] = "0" * 64
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(SchemaError, match=r"router\.json: sha256 differs from .*manifest\.json"):
        Router.load(copy)  # the finished stage's manifest vouches for the spec: an edit is caught on load
    (copy / "clusters" / "manifest.json").unlink()  # a router handed over alone: the weights check still holds
    router = Router.load(copy)  # loading the tensors does not need the model
    with pytest.raises(SchemaError, match=r"weights.*router\.json"):
        _ = router.embedder
    with pytest.raises(SchemaError, match="weights"):
        Router.load(copy).route(["a document about anything"])
    assert Router.load(run).embedder.dimension == 384  # the untouched spec still matches the installed weights


@pytest.mark.slow
def test_changing_k_reruns_clusters_onwards_not_embeddings(run, corpus, tmp_path):
    from splitlm.curate.cluster.router import Router

    copy = copy_run(run, tmp_path / "run")
    embeddings = (copy / "embeddings" / "manifest.json").read_bytes()
    vectors = (copy / "embeddings" / "vectors.npy").read_bytes()
    progress = Progress()
    summary = run_cluster([corpus], copy, replace(cluster_config(), clusters=ClustersConfig(
        kmeans=KMeansConfig(k=2), prefix_tokens=PREFIX)), progress)
    assert progress.notes == [SKIPPED.format(s) for s in ("documents", "dedup", "windows", "embeddings")]
    assert (copy / "embeddings" / "manifest.json").read_bytes() == embeddings
    assert (copy / "embeddings" / "vectors.npy").read_bytes() == vectors
    assert summary.k == 2 and len(summary.clusters["sizes"]) == 2 and sum(summary.clusters["sizes"]) == summary.windows
    assert Router.load(copy).k == 2
    assert sorted(p.name for p in (copy / "shards").glob("cluster-*")) == ["cluster-00", "cluster-01"]
    assert sorted(p.name for p in (copy / "cards").glob("cluster-*.json")) == ["cluster-00.json", "cluster-01.json"]
    assert set(assignments(copy)) == {0, 1}
    for stage in ("clusters", "shards", "routing", "cards"):
        assert StageManifest.read(copy / stage).config_hash != StageManifest.read(run / stage).config_hash or \
            StageManifest.read(copy / stage).input_fingerprint != StageManifest.read(run / stage).input_fingerprint
    # and with nothing changed, all eight stages are skipped
    again = Progress()
    run_cluster([corpus], copy, replace(cluster_config(), clusters=ClustersConfig(
        kmeans=KMeansConfig(k=2), prefix_tokens=PREFIX)), again)
    assert again.notes == [SKIPPED.format(s) for s in
                           ("documents", "dedup", "windows", "embeddings", "clusters", "shards", "routing", "cards")]


def test_dedup_algorithm_bump_reruns_dedup_only(tmp_path, monkeypatch):
    from splitlm.curate import dedup

    corpus = demo_slice(tmp_path / "demo.jsonl", {"tiny": 6, "wiki": 6}, 80)
    lines = corpus.read_text().splitlines()
    again = json.loads(lines[0]) | {"id": "copy-of-first"}  # one exact duplicate, so dedup writes a removal
    corpus.write_text("\n".join(lines + [json.dumps(again)]) + "\n")
    config = WindowsRunConfig(ingest=IngestConfig(domain_field="domain"), windows=WindowsConfig(seq_len=63))
    run = tmp_path / "run"
    first = run_windows([corpus], run, config)
    assert first.documents_duplicate == 1
    before = {s: StageManifest.read(run / s) for s in ("documents", "dedup", "windows")}
    raw = {s: (run / s / "manifest.json").read_bytes() for s in ("documents", "windows")}
    assert before["dedup"].algorithm == 1

    monkeypatch.setattr(dedup, "ALGORITHM", 2)
    progress = Progress()
    summary = run_windows([corpus], run, config, progress)
    # dedup recomputed; its output bytes are the same, so windows (keyed on them) is still current
    assert progress.notes == [SKIPPED.format("documents"), SKIPPED.format("windows")]
    after = StageManifest.read(run / "dedup")
    assert after.algorithm == 2 and after.parts == before["dedup"].parts
    assert after.output_fingerprint == before["dedup"].output_fingerprint
    assert {s: (run / s / "manifest.json").read_bytes() for s in ("documents", "windows")} == raw
    assert summary == first

    # a second run under the bumped version skips everything
    steady = Progress()
    run_windows([corpus], run, config, steady)
    assert steady.notes == [SKIPPED.format(s) for s in ("documents", "dedup", "windows")]


@pytest.mark.slow
def test_mean_embedding_mode_end_to_end(run, corpus, tmp_path):
    from splitlm.curate.cluster.router import Router
    from splitlm.schemas.tokens import TokenArray

    # 30 pieces per chunk: a 64-token window is ~70-80 word pieces, so every window is read in
    # several chunks and `mean` really differs from `truncate` (at 254 pieces they would coincide).
    copy = copy_run(run, tmp_path / "run")
    progress = Progress()
    summary = run_cluster([corpus], copy, cluster_config(embed=EmbedConfig(mode="mean", max_pieces=32)), progress)
    assert progress.notes == [SKIPPED.format(s) for s in ("documents", "dedup", "windows")]
    assert summary.embed_mode == "mean"
    assert json.loads((copy / "manifest.json").read_text())["embed_mode"] == "mean"
    spec = json.loads((copy / "clusters" / "router.json").read_text())
    assert spec["embedder"]["mode"] == "mean" and spec["embedder"]["max_pieces"] == 32
    for c in range(3):
        card = json.loads((copy / "cards" / f"cluster-{c:02d}.json").read_text())
        assert card["embed_mode"] == "mean" and card["provenance"]["embedder"]["mode"] == "mean"

    mean = np.load(copy / "embeddings" / "vectors.npy")
    head = np.load(run / "embeddings" / "vectors.npy")
    assert mean.shape == head.shape and np.allclose(np.linalg.norm(mean, axis=1), 1.0, atol=1e-4)
    assert np.mean(np.sum(mean * head, axis=1) < 0.999) > 0.9  # chunk means, not the head alone

    router = Router.load(copy)
    assert router.spec.embedder.mode == "mean" and router.embedder.config.max_pieces == 32
    texts = router.tokenizer.decode_batch(TokenArray(copy / "windows").tokens)
    routed = router.route_texts(texts).clusters
    agree = float(np.mean(routed == assignments(copy)))
    assert agree >= 0.9, f"routing window texts reproduces {agree:.1%} of the mean-mode assignments"
