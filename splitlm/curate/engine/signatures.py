"""The dedup stage in file groups: a map that signs one group, and the band-grouping barrier.

`sign_group` computes, for every document of a group, the exact key (sha256 of the normalised
text) and the MinHash signature: the expensive part, run anywhere in parallel, written as
`signatures.parquet` in the group's scratch folder, with its band keys cut into shuffle partitions
(`splitlm.curate.engine.bands`: a reduce per partition finds the documents that share a key with
another, the only ones that can take part in a duplicate). The barrier `pick_duplicates` reads the
signatures in group order and replays, for those documents, the one-process rule (`splitlm.curate.dedup.Deduplicator`):
each signature is cut into the LSH bands, documents sharing a band bucket are candidates, and a
document is a duplicate when an earlier *kept* document matches (exact key, or a candidate whose
estimated Jaccard reaches the threshold). Since the signatures are the ones the one-process pass
computes and the decisions are taken in the same order, it finds exactly the same duplicates.
Memory of the barrier: the candidate ids (8 bytes each), and the band buckets and one signature
(num_perm x 4 bytes) per kept candidate; documents that share nothing cost nothing.
It writes `duplicates-GGGGG.parquet` per group (a group's duplicates, in document order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.parts import PartWriter
from splitlm.curate.dedup import DedupConfig, Deduplicator, DuplicateLog, exact_key
from splitlm.curate.engine.bands import GROUP_SHIFT, band_keys, exact_keys, write_band_keys
from splitlm.curate.engine.groups import attempt, mark_done, read_done
from splitlm.schemas.tables import DUPLICATES

SIGNATURES = pa.schema([("doc_id", pa.string()), ("key", pa.binary(32)), ("signature", pa.binary()),
                        ("domain", pa.string()), ("source", pa.string()), ("line", pa.int64())])


def sign_group(doc_parts: list[str], config: DedupConfig, folder: Path, partitions: int = 1) -> dict[str, Any]:
    """Map: exact keys and MinHash signatures of one group's documents, and their band keys split into
    `partitions` shuffle files (`splitlm.curate.engine.bands`); skipped when done with as many partitions."""
    done = read_done(folder)
    if done is not None and done.get("partitions") == partitions:
        return {**done, "resumed": True}
    with attempt(folder):
        dedup = Deduplicator(config)
        hashranges = _hashranges(config)
        writer = PartWriter(folder, "signatures", SIGNATURES, rows_per_part=2**62)
        exact, bands = [], []
        for path in doc_parts:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                keys, sigs = [], []
                for row in batch.to_pylist():
                    key = exact_key(row["text"])
                    sig = dedup._minhash(row["text"]).hashvalues.astype("<u4").tobytes() if config.near else b""
                    writer.write({"doc_id": row["doc_id"], "key": key, "signature": sig,
                                  "domain": row["domain"], "source": row["source"], "line": row["line"]})
                    keys.append(key)
                    sigs.append(sig)
                exact.append(exact_keys(keys))
                sig_NP = np.frombuffer(b"".join(sigs), "<u4").reshape(len(sigs), -1)
                bands.append(band_keys(sig_NP, hashranges))  # 8 bytes a band a document, not the signatures
        writer.close()
        write_band_keys(folder, np.concatenate(exact) if exact else np.empty(0, np.uint64),
                        np.concatenate(bands) if bands else np.empty((0, len(hashranges)), np.uint64), partitions)
    return {**mark_done(folder, {"documents": writer.rows, "partitions": partitions}), "resumed": False}


def _hashranges(config: DedupConfig) -> list[tuple[int, int]]:
    """The LSH index's bands (`MinHashLSH.hashranges` for the threshold and permutations); none without near."""
    if not config.near:
        return []
    from datasketch import MinHashLSH

    return list(MinHashLSH(threshold=config.threshold, num_perm=config.num_perm).hashranges)


def pick_duplicates(folders: list[Path], config: DedupConfig, out: Path, candidates: np.ndarray | None = None,
                    advance=lambda n: None) -> dict[str, Any]:
    """Barrier: the duplicates of every group, decided in document order across all groups.

    `candidates` (sorted ids, `bands.shared_documents`) limits the replay to documents that share a key
    with another; the rest are kept without entering the index (the same decisions). None replays all."""
    from datasketch import LeanMinHash

    dedup = Deduplicator(config)
    seed, scheme = config.seed, dedup._template.scheme
    log = DuplicateLog()
    replayed = 0
    for g, folder in enumerate(folders):
        writer = PartWriter(out, "duplicates", DUPLICATES, first_part=g, rows_per_part=2**62)
        mine = None if candidates is None else _group_rows(candidates, g)
        row_index = 0
        for batch in pq.ParquetFile(folder / "signatures-00000.parquet").iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                if mine is None or _takes(mine, row_index):
                    sig = row["signature"]
                    replayed += 1
                    log.record(row, dedup.decide(row["doc_id"], row["key"], lambda sig=sig: LeanMinHash(
                        seed=seed, hashvalues=np.frombuffer(sig, "<u4"), scheme=scheme)), writer)
                else:
                    log.record(row, None, writer)
                row_index += 1
            advance(batch.num_rows)
        writer.close()
    return {**log.counts(), "documents_replayed": replayed}


def _group_rows(candidates: np.ndarray, g: int) -> np.ndarray:
    """The rows of group g among the candidate ids (sorted)."""
    lo, hi = np.searchsorted(candidates, [g << GROUP_SHIFT, (g + 1) << GROUP_SHIFT])
    return candidates[lo:hi] - (np.int64(g) << np.int64(GROUP_SHIFT))


def _takes(rows: np.ndarray, i: int) -> bool:
    j = np.searchsorted(rows, i)
    return bool(j < len(rows) and rows[j] == i)


def no_duplicates(groups: int, out: Path, documents: int) -> dict[str, Any]:
    """`--no-dedup`: an empty duplicates part per group."""
    for g in range(groups):
        pq.write_table(DUPLICATES.empty_table(), out / f"duplicates-{g:05d}.parquet")
    return {"documents_in": documents, "documents_duplicate": 0, "duplicates_by_kind": {},
            "documents_kept": documents}


