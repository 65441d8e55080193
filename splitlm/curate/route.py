"""`curate route`: send new documents to clusters by their prefix, reading the ingest formats.

Every input row gets one output line; rows ingest would reject carry `error` (the quarantine
reason) and `detail` instead of a route, so nothing is silently lost. A routed row's columns:

- `doc_id`, `source`, `line`: which input row it is;
- `cluster`: the chosen cluster (always set, also under a fallback);
- `distance`: squared L2 from the prefix's embedding to that cluster's centroid (no bias);
- `probability`: the chosen cluster's probability. With a routing stage (`RUN/routing/`) it is
  calibrated on training-window prefixes: of prefixes routed with probability ~0.8, ~80% belong to
  the chosen cluster. A run without one reports a softmax at T = 1 (a ranking, not a calibrated
  probability) and refuses `--min-confidence`;
- `top2`: the runner-up cluster (-1 when K = 1);
- `router`: which router chose (`centroid` or `learned`, set by `curate cluster --router`);
- `fallback`: only with `--min-confidence p`, on rows whose probability is below p: `"mixture"`
  (send them to the model trained on everything, e.g. the pretrained-only model).
"""

from __future__ import annotations

import json
from pathlib import Path

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError
from splitlm.core.paths import inside, out_file
from splitlm.curate.cluster.router import Router
from splitlm.curate.ingest import DocumentReader, IngestConfig, Rejected

FALLBACK = "mixture"


def route_documents(run: Path, inputs: list[Path], out: Path, ingest: IngestConfig, prefix_tokens: int | None = None,
                    batch_size: int = 256, min_confidence: float | None = None) -> dict[str, int]:
    """Route every row of `inputs` into `out` (JSONL); `prefix_tokens` None means the router's own."""
    if prefix_tokens is not None and prefix_tokens < 1:
        raise ConfigError(f"--prefix-tokens {prefix_tokens}: must be >= 1 "
                          "(a prefix of 0 tokens routes every document alike)")
    if min_confidence is not None and not 0.0 < min_confidence <= 1.0:
        raise ConfigError(f"--min-confidence {min_confidence}: must be in (0, 1] (a probability)")
    router = Router.load(run)
    if min_confidence is not None and not router.calibrated:
        raise ConfigError(f"--min-confidence: {run} has no routing stage (RUN/routing), so its probabilities are "
                          "not calibrated; rerun `curate cluster` with this splitlm")
    reader = DocumentReader(inputs, ingest)
    _check_out(out_file(out), inputs, reader)
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"routed": 0, "rejected": 0, "fallback": 0}
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
                prob = float(result.probability[i])
                row = {"doc_id": item.doc_id, "source": item.source, "line": item.line,
                       "cluster": int(result.clusters[i]), "distance": round(float(result.distances[i]), 6),
                       "probability": round(prob, 6), "top2": int(result.top2[i]), "router": result.router}
                if min_confidence is not None and prob < min_confidence:
                    row["fallback"] = FALLBACK
                    counts["fallback"] += 1
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
