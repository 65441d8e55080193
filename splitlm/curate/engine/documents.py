"""The documents stage in file groups: a map that ingests one group, and the duplicate-id barrier.

`ingest_group` validates a group's files exactly as the one-process reader does and writes its
`part-*.parquet` and `quarantine-*.parquet` into the group's scratch folder. The barrier
`merge_documents` streams every group's doc ids in order and quarantines, as `duplicate_id`, an
accepted row whose id an earlier group accepted (memory: one entry per distinct id); it then links
the parts into the stage folder under global numbers (`part-00000.parquet`, ...) and records each
group's [first, last) documents part in the manifest (`counts["groups"]`) for the stages after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from splitlm.core.parts import part_files
from splitlm.curate.engine.groups import attempt, link, mark_done, read_done
from splitlm.curate.ingest import DocumentReader, IngestConfig, write_documents
from splitlm.schemas.tables import DOCUMENTS, QUARANTINE


def ingest_group(files: list[tuple[str, str]], config: IngestConfig, folder: Path) -> dict[str, Any]:
    """Map: one group's documents and quarantine parts (skipped when the group is already done)."""
    done = read_done(folder)
    if done is not None:
        return {**done, "resumed": True}
    with attempt(folder):
        reader = DocumentReader([], config, files=[(Path(f), Path(r)) for f, r in files])
        counts = write_documents(reader, folder)
    kinds = {doc_id: kind for doc_id, kind in reader._seen_ids.items() if kind != "str"}
    done = {"accepted": counts["documents_accepted"], "reasons": counts["documents_quarantined"], "kinds": kinds}
    return {**mark_done(folder, done), "resumed": False}


def _conflicts(folders: list[Path], results: list[dict]) -> list[dict[str, str]]:
    """Per group: accepted ids an earlier group accepted first -> the duplicate_id detail."""
    seen: dict[str, int] = {}
    out = []
    for g, folder in enumerate(folders):
        found = {}
        for path in part_files(folder, "part"):
            for doc_id in pq.read_table(path, columns=["doc_id"]).column(0).to_pylist():
                first = seen.setdefault(doc_id, g)
                if first != g:
                    was, now = results[first]["kinds"].get(doc_id, "str"), results[g]["kinds"].get(doc_id, "str")
                    note = "" if was == now else f" (first as a {was}: ids compare as text)"
                    found[doc_id] = f"id {doc_id!r} seen before{note}"
        out.append(found)
    return out


def _requarantine(folder: Path, found: dict[str, str], sources: list[str]) -> tuple[list[pa.Table], pa.Table]:
    """A group's documents without the `found` ids, and its quarantine with them, in file/line order."""
    kept, moved = [], []
    for path in part_files(folder, "part"):
        table = pq.read_table(path)
        hit = pc.is_in(table.column("doc_id"), value_set=pa.array(list(found), pa.string()))
        kept.append(table.filter(pc.invert(hit)))
        moved += table.filter(hit).select(["doc_id", "source", "line"]).to_pylist()
    rows = [{"source": r["source"], "line": r["line"], "reason": "duplicate_id", "detail": found[r["doc_id"]]}
            for r in moved]
    for path in part_files(folder, "quarantine"):
        rows += pq.read_table(path).to_pylist()
    order = {s: i for i, s in enumerate(sources)}
    rows.sort(key=lambda r: (order.get(r["source"], len(order)), r["line"]))
    return kept, pa.Table.from_pylist(rows, schema=QUARANTINE)


def merge_documents(folders: list[Path], results: list[dict], groups_files: list[list[str]], out: Path,
                    counts: dict[str, Any]) -> dict[str, Any]:
    """Barrier: cross-group duplicate ids, then every group's parts linked into `out` in order."""
    conflicts = _conflicts(folders, results)
    numbers = {"part": 0, "quarantine": 0}
    reasons: Counter[str] = Counter()
    accepted, spans = 0, []

    def place(prefix: str, src: Path | None = None, table: pa.Table | None = None) -> None:
        dst = out / f"{prefix}-{numbers[prefix]:05d}.parquet"
        numbers[prefix] += 1
        link(src, dst) if table is None else pq.write_table(table, dst, compression="zstd")

    for g, folder in enumerate(folders):
        first = numbers["part"]
        reasons.update(results[g]["reasons"])
        if conflicts[g]:
            kept, quarantine = _requarantine(folder, conflicts[g], groups_files[g])
            reasons["duplicate_id"] += len(conflicts[g])
            for table in kept:
                if table.num_rows:
                    place("part", table=table)
            if quarantine.num_rows:
                place("quarantine", table=quarantine)
        else:
            for prefix in numbers:
                for path in part_files(folder, prefix):
                    if pq.ParquetFile(path).metadata.num_rows:
                        place(prefix, src=path)
        accepted += results[g]["accepted"] - len(conflicts[g])
        spans.append([first, numbers["part"]])
    for prefix, schema in (("part", DOCUMENTS), ("quarantine", QUARANTINE)):
        if not numbers[prefix]:  # an empty table still gets a file, so readers see the schema
            pq.write_table(schema.empty_table(), out / f"{prefix}-00000.parquet")
    return {**counts, "documents_in": accepted + sum(reasons.values()), "documents_accepted": accepted,
            "documents_quarantined": dict(sorted(reasons.items())), "groups": spans}
