"""Domain x cluster distribution (paper Fig. 9): how labelled documents spread over the clusters.

A window's label is the label holding most of its tokens (ties: the smaller label), the rule the
windows stage uses for its `domain` column. Labels come from one of three places:
- the ingest label (default; `--label-field domain` or the `--domain-field` given at ingest):
  the windows' `domain` column, nothing re-read;
- `source`: the input file each piece came from (recorded in the windows' pieces);
- any other dotted field (`meta.top`): re-read from the corpus files recorded at ingest, matched to
  documents by the ingest's own ids, so no re-ingest is needed as long as those files are still
  there. Windows whose documents lack the field get the label `(none)`.
Per label: counts, row-normalised shares, entropy (bits; 2**H is the effective number of clusters)
and the top cluster's share. Per cluster: purity = its largest label's share of its windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.core.parts import read_table
from splitlm.curate.ingest import Document, DocumentReader, IngestConfig
from splitlm.curate.stats import majority_label
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tables import DOCUMENTS, WINDOWS

NO_LABEL = "(none)"


@dataclass(frozen=True, eq=False)
class DomainStats:
    field: str  # what the labels are, as the user named it
    labels: list[str]  # rows, ordered by (top cluster, -top share) so the heatmap reads as a diagonal
    counts_LK: np.ndarray  # int64 windows per (label, cluster)

    @property
    def shares_LK(self) -> np.ndarray:
        return self.counts_LK / np.maximum(self.counts_LK.sum(1, keepdims=True), 1)

    @property
    def entropy_bits_L(self) -> np.ndarray:
        p_LK = self.shares_LK
        return np.abs(-np.where(p_LK > 0, p_LK * np.log2(np.where(p_LK > 0, p_LK, 1)), 0).sum(1))  # no -0.0

    @property
    def top_cluster_L(self) -> np.ndarray:
        return np.argmax(self.counts_LK, axis=1)

    @property
    def top_share_L(self) -> np.ndarray:
        return self.shares_LK.max(1)

    @property
    def sizes_K(self) -> np.ndarray:
        return self.counts_LK.sum(0)

    @property
    def purity_K(self) -> np.ndarray:
        return self.counts_LK.max(0) / np.maximum(self.sizes_K, 1)

    @property
    def top_label_K(self) -> list[str]:
        """Per cluster, its most common label (ties by name: the shared majority rule)."""
        return [majority_label(zip(self.labels, map(int, col))) or NO_LABEL for col in self.counts_LK.T]

    @property
    def labelled(self) -> bool:
        return self.labels != [NO_LABEL]


def domain_stats(run: Path, labels_N: np.ndarray, k: int, field: str | None) -> DomainStats:
    """Counts of every window (train and val) by label and cluster."""
    name, window_labels = window_labels_for(run, field)
    names = sorted({NO_LABEL if x is None else x for x in window_labels})
    index = {x: i for i, x in enumerate(names)}
    rows_N = np.array([index[NO_LABEL if x is None else x] for x in window_labels], dtype=np.int64)
    counts_LK = np.zeros((len(names), k), dtype=np.int64)
    np.add.at(counts_LK, (rows_N, labels_N), 1)
    shares_LK = counts_LK / np.maximum(counts_LK.sum(1, keepdims=True), 1)
    order = sorted(range(len(names)), key=lambda i: (int(np.argmax(counts_LK[i])), -shares_LK[i].max(), names[i]))
    return DomainStats(name, [names[i] for i in order], counts_LK[order])


def window_labels_for(run: Path, field: str | None) -> tuple[str, list[str | None]]:
    """(field name to show, label per window in window-id order)."""
    ingest = StageManifest.read(run / "documents").config
    if field in (None, "domain", ingest.get("domain_field")):
        table = read_table(run / "windows", "windows", WINDOWS, columns=["domain"])
        return ingest.get("domain_field") or "domain", table.column("domain").to_pylist()
    pieces = read_table(run / "windows", "windows", WINDOWS, columns=["pieces"]).column("pieces").to_pylist()
    if field == "source":
        return field, [majority_label([(p["source"], p["token_end"] - p["token_start"]) for p in row]) for row in pieces]
    by_doc = _reread_field(run, ingest, field)
    return field, [majority_label([(by_doc.get(p["doc_id"]), p["token_end"] - p["token_start"]) for p in row])
                   for row in pieces]


def _reread_field(run: Path, ingest: dict, field: str) -> dict[str, str | None]:
    """doc_id -> value of `field`, re-reading the corpus files the documents stage recorded.

    Documents are matched by (source, line), not by id: generated ids depend on how the inputs
    were named on the command line.
    """
    docs = read_table(run / "documents", "part", DOCUMENTS, columns=["doc_id", "source", "line"]).to_pydict()
    at = {(s, n): d for d, s, n in zip(docs["doc_id"], docs["source"], docs["line"])}
    sources = list(dict.fromkeys(docs["source"]))
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        raise ConfigError(f"--label-field {field}: the corpus file {missing[0]} recorded at ingest is gone (paths are "
                          "relative to where `curate cluster` ran): run inspect from there, or use the ingest label")
    config = IngestConfig(text_field=ingest["text_field"], id_field=ingest["id_field"], domain_field=field,
                          max_chars=ingest["max_chars"])
    out = {at[(d.source, d.line)]: d.domain for d in DocumentReader(sources, config)
           if isinstance(d, Document) and (d.source, d.line) in at}
    if not any(v is not None for v in out.values()):
        raise ConfigError(f"--label-field {field}: no document in {sources[0]} has that field")
    return out

