"""Synthetic phonebook facts `<6 letters>|<22 digits>` in two clusters, as a curated run folder.

A character vocabulary: id 0 is EOS (also the BOS every fact starts with), 1-26 are `a`-`z`, 27 is
`|`, 28-37 are `0`-`9`. A fact is one window of 30 ids, BOS + 6 + 1 + 22, so seq_len is 29.

Cluster 0 and cluster 1 hold `n` facts each and share round(alpha * n) of them (the paper's
similarity alpha = |c0 & c1| / n). Every name is distinct over both clusters, so a name has one
number. The facts are drawn from `seed` alone: the same seed and n give the same facts.

`write_run` writes them in the layout `curate cluster` writes (`manifest.json`, `shards/cluster-KK/
{train,val}/tokens.bin + tokens.json + index.parquet`), so the same Trainer-based runner as
`train split` trains on them. Memorisation is scored on the facts trained on: a cluster's val shard
holds the same facts as its train shard.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.atomic import atomic_path
from splitlm.schemas.layout import RunLayout
from splitlm.schemas.run import RunSummary
from splitlm.schemas.tables import SHARD_INDEX
from splitlm.schemas.tokens import write_header

NAME_LEN, DIGITS = 6, 22
VOCAB = "\n" + "abcdefghijklmnopqrstuvwxyz" + "|" + "0123456789"
"""Characters by id; id 0 (shown as a newline) is EOS/BOS."""
EOS, BAR, FIRST_DIGIT = 0, 27, 28
WIDTH = 1 + NAME_LEN + 1 + DIGITS
"""Ids per fact: BOS, name, `|`, number."""
PROMPT = 1 + NAME_LEN + 1
"""Ids given to the model when it is asked for the number."""
K = 2


def encode(text: str) -> np.ndarray:
    return np.array([VOCAB.index(c) for c in text], dtype=np.int64)


def decode(ids) -> str:
    return "".join(VOCAB[int(i)] for i in ids)


def make_facts(n: int, alpha: float, seed: int) -> list[np.ndarray]:
    """The two clusters' facts, each [n, WIDTH] int64; the first round(alpha * n) rows are shared."""
    shared = round(alpha * n)
    total = 2 * n - shared
    rng = np.random.default_rng([seed, n])
    names = set()
    # Distinct names: draw in rounds until enough (26^6 = 3.1e8 names, so collisions are rare).
    while len(names) < total:
        for row in rng.integers(0, 26, size=(total - len(names), NAME_LEN)):
            names.add(row.tobytes())
    name_rows = np.array([np.frombuffer(b, dtype=np.int64) for b in sorted(names)])
    name_rows = name_rows[rng.permutation(len(name_rows))][:total]
    numbers = rng.integers(0, 10, size=(total, DIGITS))
    facts = np.empty((total, WIDTH), dtype=np.int64)
    facts[:, 0] = EOS
    facts[:, 1 : 1 + NAME_LEN] = 1 + name_rows
    facts[:, PROMPT - 1] = BAR
    facts[:, PROMPT:] = FIRST_DIGIT + numbers
    own = n - shared
    return [facts[:n], np.concatenate([facts[:shared], facts[n : n + own]])]


def _write_shard(folder: Path, rows: np.ndarray, cluster: int) -> None:
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        data = rows.astype("<u2").tobytes()
        (tmp / "tokens.bin").write_bytes(data)
        write_header(tmp, np.dtype("<u2"), len(rows), WIDTH, hashlib.sha256(data).hexdigest())
        ids = [f"fact-{cluster}-{i}" for i in range(len(rows))]
        table = pa.table(
            {
                "window_id": np.arange(len(rows), dtype=np.int64),
                "doc_ids": [[d] for d in ids],
                "domain": [f"cluster-{cluster}"] * len(rows),
            },
            schema=SHARD_INDEX,
        )
        pq.write_table(table, tmp / "index.parquet")


def write_run(run: Path, clusters: list[np.ndarray], seed: int) -> RunSummary:
    """The facts as a curated run at `run` (manifest written last); an existing one is kept as is."""
    layout = RunLayout(run)
    if layout.manifest.exists():
        return RunSummary.read(run, clustered=True)
    for k, rows in enumerate(clusters):
        for split in ("train", "val"):
            _write_shard(layout.shard(k, K, split), rows, k)
    windows = sum(len(c) for c in clusters)
    tokens = windows * (WIDTH - 1)
    summary = RunSummary(
        documents_in=windows, documents_quarantined={}, documents_duplicate=0, documents_dropped=0,
        documents_windowed=windows, windows=windows, windows_val=windows, tokens=tokens, tokens_in=tokens,
        tokens_dropped=0, seq_len=WIDTH - 1, tokenizer="phonebook-chars",
        tokenizer_sha256=hashlib.sha256(VOCAB.encode()).hexdigest(), vocab_size=len(VOCAB), eos_id=EOS,
        policy="phonebook", seed=seed, k=K,
        shards={"windows": {f"cluster-{k:02d}": len(c) for k, c in enumerate(clusters)}},
    )  # fmt: skip
    summary.write(run)
    return summary
