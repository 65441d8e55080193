"""A small real RUN folder for training tests, written to the curation pipeline's output contract.

Three clusters cut from the demo corpus that `splitlm assets` provisions (no ../shared needed),
windows of 129 tokens: cluster 0 = TinyStories, cluster 1 = code, cluster 2 = wiki + c4 (two
domain labels in one cluster, so per-domain and per-cluster reports differ). Each domain's
documents are packed with EOS separately, so every window carries exactly one domain label.

`tiny_run` uses a 2,048-token byte-level BPE trained here on the same posts: with GPT-2's 50,257
ids the output layer is 88% of a tiny model's compute and tests would run 7x slower. `gpt2_run`
is the same run with the GPT-2 tokenizer, for checks that need the real vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from splitlm.schemas.layout import RunLayout
from splitlm.schemas.run import RunSummary
from splitlm.schemas.tables import SHARD_INDEX
from splitlm.schemas.tokens import write_header

SEQ_LEN = 128
CLUSTERS = {0: ["tiny"], 1: ["code"], 2: ["wiki", "c4"]}
TRAIN_WINDOWS, VAL_WINDOWS = 48, 8  # per newsgroup


TRAINER_FIXTURES = {"split_train"}


def pytest_collection_modifyitems(config, items):
    """A test that uses the shared split run depends on the real HF Trainer: it is `slow`."""
    for item in items:
        if TRAINER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _windows(tok, texts: list[str], n: int) -> np.ndarray:
    ids: list[int] = []
    for text in texts:
        ids += tok.encode(text) + [tok.eos_id]
        if len(ids) >= n * (SEQ_LEN + 1):
            break
    assert len(ids) >= n * (SEQ_LEN + 1), "not enough text for the fixture"
    return np.asarray(ids[: n * (SEQ_LEN + 1)], dtype="<u2").reshape(n, SEQ_LEN + 1)


def _write_shard(folder: Path, tokens: np.ndarray, domains: list[str], first_id: int) -> None:
    folder.mkdir(parents=True)
    data = np.ascontiguousarray(tokens).tobytes()
    (folder / "tokens.bin").write_bytes(data)
    write_header(folder, tokens.dtype, tokens.shape[0], tokens.shape[1], hashlib.sha256(data).hexdigest())
    ids = list(range(first_id, first_id + len(domains)))
    table = pa.table(
        {"window_id": ids, "doc_ids": [[f"doc-{i}"] for i in ids], "domain": domains}, schema=SHARD_INDEX
    )
    pq.write_table(table, folder / "index.parquet")


def _read_demo() -> dict[str, list[str]]:
    from splitlm.assets import demo_corpus_path

    wanted = {g for groups in CLUSTERS.values() for g in groups}
    texts: dict[str, list[str]] = {g: [] for g in wanted}
    with open(demo_corpus_path()) as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["domain"] in wanted and len(texts[doc["domain"]]) < 400:
                texts[doc["domain"]].append(doc["text"])
    return texts


def _train_bpe(texts: dict[str, list[str]], path: Path, vocab_size: int = 2048) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator((t for docs in texts.values() for t in docs[:100]), trainer)
    tok.save(str(path))
    return str(path)


def write_run(root: Path, tokenizer: str = "bpe") -> Path:
    """A RUN folder under `root`; `tokenizer` is `bpe` (trained here, 2,048 ids) or `gpt2`."""
    from splitlm.tokenizer import load_tokenizer

    texts = _read_demo()
    spec = _train_bpe(texts, root / "tokenizer.json") if tokenizer == "bpe" else tokenizer
    tok = load_tokenizer(spec)
    next_id = 0
    for k, groups in CLUSTERS.items():
        for split, n in (("train", TRAIN_WINDOWS), ("val", VAL_WINDOWS)):
            # Validation comes from the other end of each group's documents: held out by document.
            parts = [_windows(tok, texts[g] if split == "train" else texts[g][::-1], n) for g in groups]
            domains = [g for g in groups for _ in range(n)]
            _write_shard(RunLayout(root).shard(k, len(CLUSTERS), split), np.concatenate(parts), domains, next_id)
            next_id += len(domains)
    windows = next_id
    RunSummary(
        documents_in=windows, documents_quarantined={}, documents_duplicate=0, documents_dropped=0,
        documents_windowed=windows, windows=windows, windows_val=VAL_WINDOWS * 4, tokens=windows * (SEQ_LEN + 1),
        tokens_in=windows * (SEQ_LEN + 1), tokens_dropped=0, seq_len=SEQ_LEN, tokenizer=spec, tokenizer_sha256=tok.sha256,
        vocab_size=tok.vocab_size, eos_id=tok.eos_id, policy="concat", seed=0, k=len(CLUSTERS),
    ).write(root)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def gpt2_run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("run-gpt2"), tokenizer="gpt2")


class OverlapRouter:
    """Stand-in for `splitlm.curate.cluster.router.Router`: the cluster whose train shard holds most prefix tokens.

    A bag-of-token-ids rule, so it can misroute; tests check agreement, not perfection.
    """

    def __init__(self, run: Path):
        from splitlm.schemas.tokens import TokenArray

        self.vocab = []
        for k in range(len(CLUSTERS)):
            shard = TokenArray(RunLayout(run).shard(k, len(CLUSTERS), "train"))
            counts = np.bincount(np.asarray(shard.tokens).ravel(), minlength=65536).astype(np.float64)
            self.vocab.append(np.log1p(counts) / np.log1p(counts).sum())

    prefix_tokens = 32

    def route_tokens(self, prefixes: list[list[int]], prefix_tokens: int | None = None):
        prefix_tokens = prefix_tokens or self.prefix_tokens
        scores = np.array([[v[np.asarray(p[:prefix_tokens])].sum() for v in self.vocab] for p in prefixes])
        clusters = scores.argmax(1).astype(np.int32)
        return SimpleNamespace(clusters=clusters, distances=(-scores.max(1)).astype(np.float32))


@pytest.fixture(scope="session")
def overlap_router(tiny_run) -> OverlapRouter:
    return OverlapRouter(tiny_run)


# The shared split run: 30 pretraining steps of 4 x 128 tokens, split at steps 0 and 6, K = 3, so
# branches take 10 and 8 steps and D + K * D' = D_T holds exactly. test_split reruns these flags.
SPLIT_FLAGS = dict(total_tokens=30 * 512, split_at=(0, 6 * 512), batch_size=4, eval_every=4 * 512, eval_windows=8)


@pytest.fixture(scope="session")
def split_train(tmp_path_factory, tiny_run) -> Path:
    from splitlm.train.config import Execution
    from splitlm.train.split import SplitConfig, split

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train")
    split(SplitConfig(run=tiny_run, size="tiny", **SPLIT_FLAGS), out, ex=Execution(threads=1))
    return out
