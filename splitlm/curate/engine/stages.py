"""The documents, dedup and windows stages as maps over file groups plus their barriers.

Each `build_*` is what `splitlm.curate.pipeline` runs inside the stage runner: it plans the groups
(the documents stage, from the input file sizes and `--part-mb`; the later stages read that plan
from the documents manifest, `counts["groups"]`), maps the group task over the groups that have no
finished result in the scratch folder, runs the barrier into the stage's partial folder, and
removes the scratch folder. The driver only plans and merges (links parts, renumbers window ids);
the tasks, the dedup shuffle (a reduce per partition of band keys) and its barrier (the LSH replay of
the documents that share a key, one task) read and write the run folder themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.parts import part_files
from splitlm.curate.dedup import DedupConfig
from splitlm.curate.engine.bands import shared_documents
from splitlm.curate.engine.documents import ingest_group, merge_documents
from splitlm.curate.engine.groups import group_dir, plan_groups, remove_scratch
from splitlm.curate.engine.run import Engine
from splitlm.curate.engine.signatures import no_duplicates, pick_duplicates, sign_group
from splitlm.curate.engine.windowing import merge_windows, window_group
from splitlm.curate.ingest import DocumentReader, IngestConfig
from splitlm.curate.sources import SKIPPED
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.manifest import StageManifest


def _tasks(results: list[dict]) -> list[dict]:
    return [{"group": g, "pid": r["pid"], "resumed": r["resumed"]} for g, r in enumerate(results)]


def build_documents(reader: DocumentReader, config: IngestConfig, out: Path, scratch: Path, engine: Engine,
                    advance=lambda n: None) -> dict[str, Any]:
    groups = plan_groups([path.stat().st_size for path, _ in reader.files], config.part_mb)
    files = [[(str(f), str(r)) for f, r in reader.files[lo:hi]] for lo, hi in groups]
    folders = [group_dir(scratch, g) for g in range(len(groups))]
    results = engine.map(ingest_group, [(files[g], config, folders[g]) for g in range(len(groups))],
                         lambda g, r: advance(r["accepted"] + sum(r["reasons"].values())))
    counts = {"files": len(reader.files), "files_skipped": {reason: reader.skipped[reason] for reason in SKIPPED}}
    counts = merge_documents(folders, results, [[f for f, _ in group] for group in files], out, counts)
    counts["tasks"] = _tasks(results)
    remove_scratch(scratch)
    return counts


def document_groups(run: Path) -> list[list[str]]:
    """Per file group, the paths of its documents parts (one group for runs made before groups)."""
    folder = run / "documents"
    spans = StageManifest.read(folder).counts.get("groups") or [[0, len(part_files(folder, "part"))]]
    return [[str(folder / f"part-{p:05d}.parquet") for p in range(lo, hi)] for lo, hi in spans]


def build_dedup(run: Path, config: DedupConfig, out: Path, scratch: Path, engine: Engine,
                advance=lambda n: None) -> dict[str, Any]:
    groups = document_groups(run)
    if not config.enabled:
        accepted = StageManifest.read(run / "documents").counts["documents_accepted"]
        advance(accepted)
        return no_duplicates(len(groups), out, accepted)
    folders = [group_dir(scratch, g) for g in range(len(groups))]
    partitions = len(groups)  # shuffle partitions of the band keys: as many as map tasks
    results = engine.map(sign_group, [(groups[g], config, folders[g], partitions) for g in range(len(groups))])
    shared = engine.map(shared_documents, [([str(f) for f in folders], p) for p in range(partitions)])
    candidates = np.unique(np.concatenate(shared)) if shared else np.empty(0, np.int64)
    # the barrier is one task too (under Ray, on a worker: the driver only plans and merges)
    [counts] = engine.map(pick_duplicates, [(folders, config, out, candidates)],
                          lambda _, r: advance(r["documents_in"]))
    counts["tasks"] = _tasks(results)
    remove_scratch(scratch)
    return counts


def build_windows(run: Path, config: WindowsConfig, out: Path, scratch: Path, engine: Engine,
                  advance=lambda n: None) -> dict[str, Any]:
    groups = document_groups(run)
    duplicates = [str(run / "dedup" / f"duplicates-{g:05d}.parquet") for g in range(len(groups))]
    folders = [group_dir(scratch, g) for g in range(len(groups))]
    results = engine.map(window_group, [(groups[g], duplicates[g], config, folders[g]) for g in range(len(groups))],
                         lambda g, r: advance(r["documents_in"]))
    counts = {**merge_windows(folders, results, out, config), "tasks": _tasks(results)}
    remove_scratch(scratch)
    return counts
