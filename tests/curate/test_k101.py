"""K = 101: three-digit cluster names through cluster, cards, inspect, export and one split branch.

One run, shared by the module: 500 short demo documents (each cut to 30 words, about one 64-token
window, so documents land in train or validation independently of each other) clustered into 101.

Three choices keep it small and make `train split` possible at all:
- `train split` evaluates every cluster's validation shard, so all 101 clusters need validation
  windows: with ~6 windows a cluster and val_fraction 0.1 most would have none, so the shards'
  validation floor (`--val-min-windows 1`) moves one window of each such cluster to validation.
- MiniLM reads 16 word pieces a window (`max_pieces`), a fifth of the default's work; the router
  records it, so routing, cards and inspect read the same.
- A 1,024-id byte-level BPE trained here on the slice (as tests/train/conftest.py does): with GPT-2's
  50,257 ids the output layer dominates the 101 pretraining steps and 202 evaluations (~4x slower).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.curate.cards.build import CardsConfig
from splitlm.curate.cluster.kmeans import KMeansConfig
from splitlm.curate.cluster.stage import ClustersConfig
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.stage import EmbeddingsConfig
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.pipeline import ClusterRunConfig, WindowsRunConfig, run_cluster
from splitlm.curate.shards import ShardsConfig
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.layout import cluster_name

pytestmark = pytest.mark.slow

K = 101
SEQ_LEN = 63
WORDS = 30
DOCS = {"wiki": 250, "tiny": 125, "c4": 62, "code": 62}
NAMES = [f"cluster-{c:03d}" for c in range(K)]


def short_demo_docs(out: Path) -> list[str]:
    from splitlm.assets import demo_corpus_path

    got, texts = {d: 0 for d in DOCS}, []
    with open(demo_corpus_path()) as src, open(out, "w") as dst:
        for line in src:
            doc = json.loads(line)
            d, words = doc["domain"], doc["text"].split()
            if d in DOCS and got[d] < DOCS[d] and len(words) >= WORDS:
                got[d] += 1
                texts.append(" ".join(words[:WORDS]))
                dst.write(json.dumps({"id": doc["id"], "domain": d, "text": texts[-1]}) + "\n")
    assert got == DOCS, f"the demo corpus is short of documents: {got}"
    return texts


def train_bpe(texts: list[str], path: Path, vocab_size: int = 1024) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus") / "demo.jsonl"
    tokenizer = train_bpe(short_demo_docs(corpus), corpus.with_name("tokenizer.json"))
    out = tmp_path_factory.mktemp("k101") / "run"
    config = ClusterRunConfig(
        windows=WindowsRunConfig(ingest=IngestConfig(domain_field="domain"),
                                 windows=WindowsConfig(seq_len=SEQ_LEN, val_fraction=0.1,
                                                       tokenizer=tokenizer)),
        embeddings=EmbeddingsConfig(embed=EmbedConfig(max_pieces=16)),
        clusters=ClustersConfig(kmeans=KMeansConfig(k=K)),
        shards=ShardsConfig(val_min_windows=1),
        cards=CardsConfig(routing_sample=2, terms_sample=8),
    )
    summary = run_cluster([corpus], out, config)
    assert summary.k == K and summary.windows - summary.windows_val >= K and summary.vocab_size == 1024
    shards = summary.shards["clusters"]
    empty = [c for c in range(K) if shards[str(c)]["val_windows"] == 0 or shards[str(c)]["train_windows"] == 0]
    assert not empty, f"the validation floor left clusters {empty} without validation or training windows"
    assert sum(summary.shards["val_topped_up"].values()) > 0, "the slice no longer exercises the floor"
    return out


def test_cluster_names_and_cards_use_three_digits(run):
    from splitlm.schemas.card import Card
    from splitlm.schemas.layout import RunLayout, export_file

    assert cluster_name(0, K) == "cluster-000" and cluster_name(100, K) == "cluster-100"
    assert cluster_name(99, 100) == "cluster-99"  # two digits suffice up to K = 100
    assert export_file(7, K, "train", "parquet") == "cluster-007-train.parquet"
    summary = json.loads((run / "manifest.json").read_text())
    assert summary["k"] == K and len(summary["clusters"]["sizes"]) == K
    assert sum(summary["clusters"]["sizes"]) == summary["windows"]

    assert sorted(p.name for p in (run / "shards").iterdir() if p.is_dir()) == NAMES
    assert sorted(p.name for p in (run / "cards").glob("cluster-*.json")) == [f"{n}.json" for n in NAMES]
    assert sorted(p.name for p in (run / "cards").glob("cluster-*.md")) == [f"{n}.md" for n in NAMES]
    layout = RunLayout(run)
    windows = 0
    for c in range(K):
        assert layout.card(c, K).exists() and layout.shard(c, K, "train").is_dir()
        card = Card.model_validate_json(layout.card(c, K).read_text())
        assert card.cluster == c and card.name == NAMES[c] and card.windows == summary["clusters"]["sizes"][c]
        assert all(n.cluster != c and 0 <= n.cluster < K for n in card.nearest_clusters)
        windows += card.train_windows + card.val_windows
    lost = summary["shards"]["val_overflow_dropped"] + summary["shards"]["val_topup_dropped"]
    assert windows + lost == summary["windows"]
    index = (run / "cards" / "index.md").read_text()
    assert "cluster-000" in index and "cluster-100" in index


def test_inspect(run):
    from splitlm.curate.inspect.stage import InspectConfig, run_inspect

    summary = run_inspect(run, InspectConfig(split="all", sample=32, prefix_lengths=(8,)))
    assert summary["k"] == K
    assert [row["name"] for row in summary["clusters"]] == NAMES
    assert [r["prefix_tokens"] for r in summary["routing"]["rows"]] == [8, 32]
    assert len(summary["similarity"]["cosine"]) == K
    clusters_csv = (run / "inspect" / "clusters.csv").read_text()
    assert "cluster-000" in clusters_csv and "cluster-100" in clusters_csv
    for name in ("report.md", "summary.json", "domains.csv", "routing_recall.csv", "similarity.csv", "manifest.json"):
        assert (run / "inspect" / name).exists(), name


def test_export_parquet(run, tmp_path):
    from splitlm.curate.export import export_run
    from splitlm.schemas.tokens import TokenArray

    target = export_run(run, "parquet", tmp_path / "parquet")
    want = sorted(f"{n}-{split}.parquet" for n in NAMES for split in ("train", "val"))
    assert sorted(p.name for p in target.iterdir()) == want
    for c in (0, 7, 100):
        for split in ("train", "val"):
            table = pq.read_table(target / f"{NAMES[c]}-{split}.parquet")
            shard = TokenArray(run / "shards" / NAMES[c] / split)
            assert len(table) == len(shard) and set(table.column("cluster").to_pylist()) <= {c}
            if len(shard):
                np.testing.assert_array_equal(np.array(table.column("input_ids").to_pylist()), shard.tokens)


def test_train_split_one_branch(run, tmp_path):
    import torch

    from splitlm.train.config import Execution
    from splitlm.train.split import SplitConfig, split

    torch.set_num_threads(1)
    # D_T of 101 steps of one window: pretraining reaches it, and each of the 101 branches from
    # step 0 gets (101 - 0) // 101 = 1 step. Evaluate once, at the end, on one window per cluster.
    step = SEQ_LEN
    cfg = SplitConfig(run=run, size="tiny", total_tokens=K * step, split_at=(0,), batch_size=1,
                      eval_every=K * step, eval_windows=1)
    out = tmp_path / "train"
    budget, _ = split(cfg, out, clusters=(0,), ex=Execution(threads=1))
    assert budget.total_steps == K and budget.branch_steps == (1,)
    branch = out / "branches" / "split-000000000000" / "cluster-000"
    assert (branch / "final").is_dir() and (branch / "done.json").exists()
    assert [p.name for p in (out / "branches" / "split-000000000000").iterdir()] == ["cluster-000"]
    rows = pq.read_table(out / "losses.parquet").to_pylist()
    branch_rows = [r for r in rows if r["split_at"] == 0]
    assert {r["cluster"] for r in branch_rows} == {0}
    assert [r["eval_cluster"] for r in branch_rows] == [0]  # a branch is evaluated on its own cluster
    assert sorted(r["eval_cluster"] for r in rows if r["split_at"] == -1) == list(range(K))
