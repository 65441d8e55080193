"""`curate route`: send new documents to clusters by their prefix, reading the ingest formats.

Every input row gets one output line: routed documents carry `cluster` and `distance`; rows ingest
would reject carry `error` (the quarantine reason) instead, so nothing is silently lost.
"""

from __future__ import annotations

import json
from pathlib import Path

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError
from splitlm.core.paths import inside, out_file
from splitlm.curate.cluster.router import Router
from splitlm.curate.ingest import DocumentReader, IngestConfig, Rejected


def route_documents(run: Path, inputs: list[Path], out: Path, ingest: IngestConfig, prefix_tokens: int | None = None,
                    batch_size: int = 256) -> dict[str, int]:
    """Route every row of `inputs` into `out` (JSONL); `prefix_tokens` None means the router's own."""
    if prefix_tokens is not None and prefix_tokens < 1:
        raise ConfigError(f"--prefix-tokens {prefix_tokens}: must be >= 1 "
                          "(a prefix of 0 tokens routes every document alike)")
    router = Router.load(run)
    reader = DocumentReader(inputs, ingest)
    _check_out(out_file(out), inputs, reader)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"routed": 0, "rejected": 0}
    batch: list = []

    def flush(fh) -> None:
        docs = [d for d in batch if not isinstance(d, Rejected)]
        result = router.route([d.text for d in docs], prefix_tokens) if docs else None
        routed = iter(range(len(docs)))
        for item in batch:
            if isinstance(item, Rejected):
                row = {"source": item.source, "line": item.line, "error": item.reason, "detail": item.detail}
                counts["rejected"] += 1
            else:
                i = next(routed)
                row = {"doc_id": item.doc_id, "source": item.source, "line": item.line,
                       "cluster": int(result.clusters[i]), "distance": round(float(result.distances[i]), 6)}
                counts["routed"] += 1
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        batch.clear()

    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for item in reader:
            batch.append(item)
            if len(batch) >= batch_size:
                flush(fh)
        flush(fh)
    return counts


def _check_out(out: Path, inputs: list[Path], reader: DocumentReader) -> None:
    """Refuse an --out that would replace an input file, or sit in an input folder a rerun would read."""
    for path, _ in reader.files:
        if inside(out, path):
            raise ConfigError(f"--out {out} is the input file {path}: routing would replace it; write elsewhere")
    for folder in inputs:
        if Path(folder).is_dir() and inside(out, folder):
            raise ConfigError(f"--out {out} is inside the input folder {folder}: a rerun would route the routed "
                              "file too; write elsewhere")
