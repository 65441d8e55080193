"""Cluster cards: one pydantic model, rendered to JSON and to Markdown with YAML front matter.

Stable JSON keys: `cluster`, `windows`, `tokens`, `domains` (label -> window count) and the rest
below. `Card.model_json_schema()` is the schema cards validate against.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Exemplar(BaseModel):
    window_id: int
    distance: float  # squared L2 to the centroid
    doc_ids: list[str]
    domain: str | None
    snippet: str


class Neighbour(BaseModel):
    cluster: int
    cosine: float  # between centroids


class Balance(BaseModel):
    size: int  # windows (train + val)
    mean_size: float
    ratio_to_mean: float
    run_max_min: float  # largest / smallest cluster in the run


class Provenance(BaseModel):
    # No run folder name: the same corpus and config give the same cards wherever the run lives.
    config_hash: str  # of the resolved pipeline config
    corpus_fingerprint: str
    embedder: dict
    tokenizer: str
    versions: dict[str, str]


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cluster: int
    name: str  # folder name, e.g. cluster-03
    windows: int
    train_windows: int
    val_windows: int
    tokens: int
    share: float = Field(ge=0, le=1)  # of all windows in the run
    top_terms: list[str]  # class-based TF-IDF against the other clusters
    exemplars: list[Exemplar]
    domains: dict[str, int]  # label -> window count (empty without labels)
    top_domain: str | None
    top_domain_share: float | None
    nearest_clusters: list[Neighbour]
    dedup_removals: int  # documents removed as duplicates of documents in this cluster
    balance: Balance
    embed_mode: str
    routing_accuracy: float | None  # share of its validation windows whose prefix routes here
    routing_prefix_tokens: int  # the prefix length that share was measured at (the router's)
    routing_sample: int
    # each router the run has (`centroid`; `learned`) -> the same share, on the same sampled validation windows
    routing_accuracy_by_router: dict[str, float | None] = Field(default_factory=dict)
    provenance: Provenance
