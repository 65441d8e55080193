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
import pyarrow as pa
import pyarrow.compute as pc

from splitlm.core.errors import ConfigError
from splitlm.core.parts import iter_batches, read_table
from splitlm.curate.ingest import Document, DocumentReader, IngestConfig
from splitlm.curate.stats import majority_label
from splitlm.curate.window_columns import WindowColumns, read_window_columns
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


def domain_stats(run: Path, labels_N: np.ndarray, k: int, field: str | None,
                 table: WindowColumns | None = None) -> DomainStats:
    """Counts of every window (train and val) by label and cluster."""
    name, names, codes_N = window_labels_for(run, field, table)
    if (codes_N < 0).any():
        names = names + [NO_LABEL]
        codes_N = np.where(codes_N < 0, len(names) - 1, codes_N)
    order_names = sorted(range(len(names)), key=lambda i: names[i])  # rows by name, as before the reorder
    rank = np.empty(len(names), dtype=np.int64)
    rank[order_names] = np.arange(len(names))
    names = [names[i] for i in order_names]
    counts_LK = np.bincount(rank[codes_N] * k + labels_N.astype(np.int64), minlength=len(names) * k)
    counts_LK = counts_LK.reshape(len(names), k).astype(np.int64)
    shares_LK = counts_LK / np.maximum(counts_LK.sum(1, keepdims=True), 1)
    order = sorted(range(len(names)), key=lambda i: (int(np.argmax(counts_LK[i])), -shares_LK[i].max(), names[i]))
    return DomainStats(name, [names[i] for i in order], counts_LK[order])


def window_labels_for(run: Path, field: str | None,
                      table: WindowColumns | None = None) -> tuple[str, list[str], np.ndarray]:
    """(field name to show, labels, int64 label code per window in window-id order; -1 = no label)."""
    ingest = StageManifest.read(run / "documents").config
    if field in (None, "domain", ingest.get("domain_field")):
        table = table if table is not None else read_window_columns(run)
        return ingest.get("domain_field") or "domain", list(table.domains), table.domain_N.astype(np.int64)
    if field == "source":
        return (field, *_majority_by_piece(run, lambda pieces: pieces.field("source")))
    keys, values = _reread_field(run, ingest, field)
    return (field, *_majority_by_piece(run, lambda pieces: values.take(pc.index_in(pieces.field("doc_id"), keys))))


def _majority_by_piece(run: Path, piece_labels) -> tuple[list[str], np.ndarray]:
    """Per window, the label holding most of its tokens (ties: the smaller label; None never wins).

    Streams the windows' pieces batch by batch; `piece_labels(pieces)` gives each piece's label.
    """
    columns = [f"pieces.list.element.{f}" for f in ("doc_id", "source", "token_start", "token_end")]
    names: dict[str, int] = {}
    out = []
    for batch in iter_batches(run / "windows", "windows", WINDOWS, columns=columns, batch_size=65536):
        lists = batch.column(0)
        flat = lists.flatten()
        parent = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
        weight = (pc.subtract(flat.field("token_end"), flat.field("token_start"))).to_numpy().astype(np.int64)
        encoded = pc.dictionary_encode(piece_labels(flat))
        local = np.array([names.setdefault(x, len(names)) for x in encoded.dictionary.to_pylist()] + [-1], np.int64)
        code = local[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)]
        rank = np.empty(len(names), dtype=np.int64)
        rank[[names[x] for x in sorted(names)]] = np.arange(len(names))
        best = np.full(batch.num_rows, -1, dtype=np.int64)
        has = code >= 0
        if has.any():
            pair, inverse = np.unique(parent[has] * len(names) + code[has], return_inverse=True)
            total = np.bincount(inverse.ravel(), weights=weight[has]).astype(np.int64)
            win, lab = pair // len(names), pair % len(names)
            pick = np.lexsort((rank[lab], -total, win))  # per window: heaviest, then smallest name
            first = np.ones(len(pick), dtype=bool)
            first[1:] = win[pick][1:] != win[pick][:-1]
            best[win[pick][first]] = lab[pick][first]
        out.append(best)
    return list(names), np.concatenate(out) if out else np.zeros(0, np.int64)


def _reread_field(run: Path, ingest: dict, field: str) -> tuple[pa.Array, pa.Array]:
    """(doc ids, value of `field`), re-reading the corpus files the documents stage recorded.

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
    return pa.array(list(out), pa.string()), pa.array(list(out.values()), pa.string())

