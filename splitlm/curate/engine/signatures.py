"""The dedup stage in file groups: a map that signs one group, and the band-grouping barrier.

`sign_group` computes, for every document of a group, the exact key (sha256 of the normalised
text) and the MinHash signature: the expensive part, run anywhere in parallel, written as
`signatures.parquet` in the group's scratch folder. The barrier `pick_duplicates` reads the
signatures in group order and replays the one-process rule (`splitlm.curate.dedup.Deduplicator`):
each signature is cut into the LSH bands, documents sharing a band bucket are candidates, and a
document is a duplicate when an earlier *kept* document matches (exact key, or a candidate whose
estimated Jaccard reaches the threshold). Since the signatures are the ones the one-process pass
computes and the decisions are taken in the same order, it finds exactly the same duplicates.
Memory of the barrier: the band buckets and one signature (num_perm x 4 bytes) per kept document.
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
from splitlm.curate.engine.groups import attempt, mark_done, read_done
from splitlm.schemas.tables import DUPLICATES

SIGNATURES = pa.schema([("doc_id", pa.string()), ("key", pa.binary(32)), ("signature", pa.binary()),
                        ("domain", pa.string()), ("source", pa.string()), ("line", pa.int64())])


def sign_group(doc_parts: list[str], config: DedupConfig, folder: Path) -> dict[str, Any]:
    """Map: exact keys and MinHash signatures of one group's documents (skipped when done)."""
    done = read_done(folder)
    if done is not None:
        return {**done, "resumed": True}
    with attempt(folder):
        dedup = Deduplicator(config)
        writer = PartWriter(folder, "signatures", SIGNATURES, rows_per_part=2**62)
        for path in doc_parts:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    sig = dedup._minhash(row["text"]).hashvalues.astype("<u4").tobytes() if config.near else b""
                    writer.write({"doc_id": row["doc_id"], "key": exact_key(row["text"]), "signature": sig,
                                  "domain": row["domain"], "source": row["source"], "line": row["line"]})
        writer.close()
    return {**mark_done(folder, {"documents": writer.rows}), "resumed": False}


def pick_duplicates(folders: list[Path], config: DedupConfig, out: Path, advance=lambda n: None) -> dict[str, Any]:
    """Barrier: the duplicates of every group, decided in document order across all groups."""
    from datasketch import LeanMinHash

    dedup = Deduplicator(config)
    seed, scheme = config.seed, dedup._template.scheme
    log = DuplicateLog()
    for g, folder in enumerate(folders):
        writer = PartWriter(out, "duplicates", DUPLICATES, first_part=g, rows_per_part=2**62)
        for batch in pq.ParquetFile(folder / "signatures-00000.parquet").iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                sig = row["signature"]
                log.record(row, dedup.decide(row["doc_id"], row["key"], lambda sig=sig: LeanMinHash(
                    seed=seed, hashvalues=np.frombuffer(sig, "<u4"), scheme=scheme)), writer)
            advance(batch.num_rows)
        writer.close()
    return log.counts()


def no_duplicates(groups: int, out: Path, documents: int) -> dict[str, Any]:
    """`--no-dedup`: an empty duplicates part per group."""
    for g in range(groups):
        pq.write_table(DUPLICATES.empty_table(), out / f"duplicates-{g:05d}.parquet")
    return {"documents_in": documents, "documents_duplicate": 0, "duplicates_by_kind": {},
            "documents_kept": documents}


