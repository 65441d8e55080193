"""Dedup: drop exact and near-duplicate documents before windowing; record what each duplicates.

- exact: sha256 of the whitespace-normalised text (runs of whitespace -> one space, trimmed).
- near: MinHash (datasketch, `num_perm` permutations) of word 5-gram shingles, candidates from an
  LSH index at `threshold`, confirmed by the estimated Jaccard of the two signatures (LSH alone lets
  through pairs below the threshold). A document is kept if no earlier kept document matches, so
  the first occurrence in input order survives and the result does not depend on batch sizes.

Cost: one MinHash per document (vectorised over its shingles) and one LSH query; memory grows by
`num_perm` x 4 bytes per kept document for the confirmation signatures.

Long documents stream: the exact key hashes the normalised text block by block, and the MinHash
takes the shingles of one block of words at a time (`splitlm.curate.chunking.word_blocks`, cut
before whitespace), `SHINGLE_BATCH` shingles per update. A MinHash is a minimum over its shingles,
so the signature is the one of the whole text at once. Working memory per document is then bounded
by the block (~`CHUNK_CHARS` characters, plus the longest word) and `SHINGLE_BATCH` x `num_perm`
x 8-byte temporaries, whatever the document's length.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.core.parts import PartWriter, iter_batches
from splitlm.curate.chunking import CHUNK_CHARS, word_blocks
from splitlm.schemas.tables import DOCUMENTS, DUPLICATES

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)
SHINGLE_BATCH = 2048
"""Shingles per MinHash update: its temporaries hold SHINGLE_BATCH x num_perm 64-bit values."""


@dataclass(frozen=True)
class DedupConfig:
    enabled: bool = True
    """`--no-dedup` turns both passes off."""
    near: bool = True
    """Run the MinHash near-duplicate pass after the exact pass."""
    threshold: float = 0.8
    """Jaccard similarity of word 5-gram sets at or above which two documents are near-duplicates."""
    shingle_words: int = 5
    num_perm: int = 128
    seed: int = 1
    """MinHash permutation seed (fixed so signatures are comparable across runs)."""

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(f"--dedup-threshold must be in (0, 1], got {self.threshold}")
        if self.shingle_words < 1 or self.num_perm < 16:
            raise ConfigError("dedup needs shingle_words >= 1 and num_perm >= 16")


def normalise(text: str) -> str:
    return " ".join(text.split())


def shingles(normalised: str, n: int) -> list[bytes]:
    """Word n-grams of a normalised text, the whole text when it has n words or fewer."""
    words = normalised.split(" ")
    if len(words) <= n:
        return [normalised.encode("utf-8")]
    return [" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)]


def exact_key(text: str, block_chars: int = CHUNK_CHARS) -> bytes:
    """sha256 of `normalise(text)`, hashed block by block."""
    digest, sep = hashlib.sha256(), b""
    for words in word_blocks(text, block_chars):
        digest.update(sep + " ".join(words).encode("utf-8"))
        sep = b" "
    return digest.digest()


def shingle_batches(text: str, n: int, block_chars: int = CHUNK_CHARS,
                    batch: int = SHINGLE_BATCH) -> Iterator[list[bytes]]:
    """`shingles(normalise(text), n)` in lists of at most `batch`, reading `text` block by block."""
    carry: list[str] = []  # the last n - 1 words seen, or every word while there are n or fewer
    emitted = False
    for words in word_blocks(text, block_chars):
        words = carry + words
        if len(words) <= n and not emitted:
            carry = words
            continue
        for i in range(0, len(words) - n + 1, batch):
            yield [" ".join(words[j : j + n]).encode("utf-8") for j in range(i, min(i + batch, len(words) - n + 1))]
        carry, emitted = words[len(words) - n + 1:], True
    if not emitted:
        yield [" ".join(carry).encode("utf-8")]


class Deduplicator:
    """Feed documents in input order; `check` returns (kind, duplicate_of) or None to keep."""

    def __init__(self, config: DedupConfig):
        from datasketch import MinHash, MinHashLSH

        self.config = config
        self._exact: dict[bytes, str] = {}
        self._lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm) if config.near else None
        self._template = MinHash(num_perm=config.num_perm, seed=config.seed)
        self._signatures: dict[str, tuple[int, np.ndarray]] = {}  # doc_id -> (insertion order, sig)

    def _minhash(self, text: str):
        mh = self._template.copy()
        for batch in shingle_batches(text, self.config.shingle_words):
            mh.update_batch(batch)
        return mh

    def check(self, doc_id: str, text: str) -> tuple[str, str] | None:
        return self.decide(doc_id, exact_key(text), lambda: self._minhash(text))

    def decide(self, doc_id: str, key: bytes, minhash) -> tuple[str, str] | None:
        """`check` given the exact key and a callable returning the MinHash (computed only when needed)."""
        if key in self._exact:
            return "exact", self._exact[key]
        if self._lsh is not None:
            mh = minhash()
            best = self._confirm(mh, self._lsh.query(mh))
            if best is not None:
                return "near", best
            self._lsh.insert(doc_id, mh, check_duplication=False)
            self._signatures[doc_id] = (len(self._signatures), mh.hashvalues.astype(np.uint32))
        self._exact[key] = doc_id
        return None

    def _confirm(self, mh, candidates: list[str]) -> str | None:
        """The earliest-kept candidate whose estimated Jaccard reaches the threshold."""
        if not candidates:
            return None
        mine = mh.hashvalues.astype(np.uint32)
        for doc_id in sorted(candidates, key=lambda c: self._signatures[c][0]):
            if float(np.mean(self._signatures[doc_id][1] == mine)) >= self.config.threshold:
                return doc_id
        return None


class DuplicateLog:
    """The decisions of one pass, in document order: each duplicate as a DUPLICATES row, counted by kind."""

    def __init__(self) -> None:
        self.seen = 0
        self.kinds: Counter[str] = Counter()

    def record(self, row: dict, hit: tuple[str, str] | None, writer: PartWriter) -> None:
        """`row` (a documents or signatures row) was decided `hit` (None: kept)."""
        self.seen += 1
        if hit is not None:
            self.kinds[hit[0]] += 1
            writer.write({"doc_id": row["doc_id"], "duplicate_of": hit[1], "kind": hit[0],
                          "domain": row["domain"], "source": row["source"], "line": row["line"]})

    def counts(self) -> dict[str, Any]:
        removed = sum(self.kinds.values())
        return {"documents_in": self.seen, "documents_duplicate": removed,
                "duplicates_by_kind": dict(sorted(self.kinds.items())), "documents_kept": self.seen - removed}


def write_duplicates(documents: Path, out: Path, config: DedupConfig, advance=lambda n: None) -> dict[str, Any]:
    """The one-process dedup: `duplicates-*.parquet` lists every removed document (DUPLICATES schema).

    The engine runs the same decisions from stored signatures (`splitlm.curate.engine.signatures`);
    this pass computes them from the texts and is the reference the engine is tested against.
    """
    writer = PartWriter(out, "duplicates", DUPLICATES)
    log = DuplicateLog()
    dedup = Deduplicator(config) if config.enabled else None
    for batch in iter_batches(documents, "part", DOCUMENTS):
        for row in batch.to_pylist():
            log.record(row, dedup.check(row["doc_id"], row["text"]) if dedup else None, writer)
        advance(batch.num_rows)
    writer.close()
    return log.counts()
