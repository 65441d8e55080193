"""`curate cluster` end to end with the real MiniLM, faiss and tokenizer on a small real corpus."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.curate.pipeline import ClusterRunConfig, run_cluster

# Small parts so a kill mid-embedding leaves finished parts behind (part size is part of the config:
# it sets batch composition, which moves bf16 results in the last bits).
ARGS = ["--domain-field", "meta.newsgroup", "--seq-len", "255", "--k", "4", "--val-fraction", "0.1",
        "--embed-part-size", "16"]


def sample(news_path: Path, out: Path, n: int, groups=("comp.graphics", "rec.sport.hockey", "sci.med", "talk.politics.guns")) -> Path:
    """n posts, an equal share from each group (the corpus file is sorted by group)."""
    per_group = {g: 0 for g in groups}
    with gzip.open(news_path, "rt") as src, open(out, "w") as dst:
        for line in src:
            group = json.loads(line)["meta"]["newsgroup"]
            if group in per_group and per_group[group] < n // len(groups):
                dst.write(line)
                per_group[group] += 1
    assert sum(per_group.values()) == n - n % len(groups)
    return out


def curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitlm.cli.curate", *args], capture_output=True, text=True)


def outputs(run: Path) -> dict[str, bytes]:
    keep = ("shards", "clusters", "cards", "embeddings")
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.relative_to(run).parts[0] in keep and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, news_path):
    return sample(news_path, tmp_path_factory.mktemp("c") / "news.jsonl", 160)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("a") / "run"
    proc = curate("cluster", str(corpus), "--out", str(out), *ARGS)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_cluster_outputs_follow_the_contracts(run):
    from splitlm.schemas.card import Card
    from splitlm.schemas.tokens import TokenArray

    summary = json.loads((run / "manifest.json").read_text())
    assert summary["k"] == 4 and summary["embed_mode"] == "truncate"
    sizes = summary["clusters"]["sizes"]
    assert sum(sizes) == summary["windows"] and max(sizes) / min(sizes) <= 1.10
    shard_windows = 0
    for c in range(4):
        for split in ("train", "val"):
            arr = TokenArray(run / "shards" / f"cluster-{c:02d}" / split)
            index = pq.read_table(run / "shards" / f"cluster-{c:02d}" / split / "index.parquet")
            assert len(index) == len(arr) and arr.tokens.shape[1] == 256
            shard_windows += len(arr)
        card = Card.model_validate_json((run / "cards" / f"cluster-{c:02d}.json").read_text())
        assert card.cluster == c and card.windows == sizes[c] and card.top_terms and card.exemplars
        assert sum(card.domains.values()) == card.windows
    assert shard_windows == summary["windows"]
    import jsonschema

    schema = json.loads((run / "cards" / "card.schema.json").read_text())
    jsonschema.validate(json.loads((run / "cards" / "cluster-00.json").read_text()), schema)
    # four newsgroups, four clusters: the groups separate well above chance (1/4)
    purity = np.mean([json.loads((run / "cards" / f"cluster-{c:02d}.json").read_text())["top_domain_share"]
                      for c in range(4)])
    assert purity > 0.5


@pytest.mark.slow
def test_routing_a_window_text_reproduces_its_shard(run):
    from splitlm.curate.cluster.router import Router
    from splitlm.schemas.tokens import TokenArray

    router = Router.load(run)
    labels = pq.read_table(run / "clusters" / "assignments-00000.parquet").column("cluster").to_numpy()
    tokens = TokenArray(run / "windows").tokens
    ids = np.arange(0, len(tokens), 3)
    texts = router.tokenizer.decode_batch(tokens[ids])
    routed = router.route_texts(texts)  # whole text, no prefix cut
    np.testing.assert_array_equal(routed.clusters, labels[ids])
    alone = router.route_texts([texts[0]])  # batch composition does not matter
    assert alone.clusters[0] == labels[ids[0]]


@pytest.mark.slow
def test_sigkill_during_embedding_then_rerun_is_identical_and_a_third_run_skips(run, corpus, tmp_path):
    """A second run of the same seed, killed mid-embedding and resumed, writes the first run's bytes."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "splitlm.cli.curate", "cluster", str(corpus), "--out", str(out), *ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / ".work" / "embeddings").rglob("part-*.npy"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "embeddings").exists()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "embeddings" / "manifest.json").read_text())
    assert manifest["counts"]["parts_resumed"] >= 2
    assert not (out / ".work" / "embeddings").exists() or not any((out / ".work" / "embeddings").iterdir())
    assert outputs(out) == outputs(run)
    start = time.perf_counter()
    proc = curate("cluster", str(corpus), "--out", str(out), *ARGS)
    assert proc.returncode == 0 and "up to date, skipped" in proc.stdout
    assert time.perf_counter() - start < 60  # nothing recomputed; generous bound, not a benchmark


def test_k_larger_than_windows_and_empty_corpus_are_one_line_errors(tmp_path):
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text("".join(json.dumps({"text": f"short document {i} " * 30}) + "\n" for i in range(10)))
    proc = curate("cluster", str(tiny), "--out", str(tmp_path / "r1"), "--k", "64", "--seq-len", "63")
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert proc.returncode == 1 and errors == [proc.stderr.splitlines()[-1]]  # progress bars, then one line
    assert errors[0].startswith("error: --k 64 is larger than the")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n{"nope": 1}\nnot json\n')
    proc = curate("cluster", str(empty), "--out", str(tmp_path / "r2"), "--k", "2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("error: no windows to cluster: all 3 documents")


@pytest.mark.slow
def test_route_command_accounts_for_every_row(run, corpus, tmp_path):
    new = tmp_path / "new.jsonl"
    lines = corpus.read_text().splitlines()[:20] + ["{broken", '{"text": "   "}']
    new.write_text("\n".join(lines) + "\n")
    proc = curate("route", str(run), str(new), "--out", str(tmp_path / "routed.jsonl"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "routed.jsonl").read_text().splitlines()]
    assert len(rows) == 22
    assert sum("cluster" in r for r in rows) == 20 and {r.get("error") for r in rows[-2:]} == {"malformed_json", "empty_text"}
    assert all(0 <= r["cluster"] < 4 for r in rows if "cluster" in r)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["megatron", "parquet"])
def test_export(run, tmp_path, fmt):
    import struct

    from splitlm.schemas.tokens import TokenArray

    proc = curate("export", str(run), "--format", fmt, "--out", str(tmp_path / fmt))
    assert proc.returncode == 0, proc.stderr
    shard = TokenArray(run / "shards" / "cluster-01" / "train")
    if fmt == "megatron":
        idx = (tmp_path / fmt / "cluster-01-train.idx").read_bytes()
        assert idx[:9] == b"MMIDIDX\x00\x00" and struct.unpack("<Q", idx[9:17])[0] == 1 and idx[17] == 8
        n, docs = struct.unpack("<QQ", idx[18:34])
        assert n == len(shard) and docs == n + 1
        lengths = np.frombuffer(idx, np.int32, n, 34)
        pointers = np.frombuffer(idx, np.int64, n, 34 + 4 * n)
        data = np.fromfile(tmp_path / fmt / "cluster-01-train.bin", np.uint16)
        row = data[pointers[1] // 2: pointers[1] // 2 + lengths[1]]
        np.testing.assert_array_equal(row, shard.tokens[1])
    else:
        import datasets

        ds = datasets.load_dataset("parquet", data_files=str(tmp_path / fmt / "cluster-01-train.parquet"),
                                   split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == len(shard) and ds[1]["input_ids"] == shard.tokens[1].tolist()
        assert set(ds["cluster"]) == {1}
