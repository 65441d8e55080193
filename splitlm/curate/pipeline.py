"""The curation pipeline: a list of stages, each a folder under RUN joined only through files.

ingest -> dedup -> windows (this module) -> embed -> kmeans -> shards -> cards (`cluster.py`).
Each stage is skipped when its folder's manifest matches its config and input fingerprint, so a
rerun with nothing changed costs seconds, and a changed option recomputes that stage onwards.
`RUN/manifest.json` sums the run up; its document counts add up to `documents_in`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from splitlm.curate.dedup import DedupConfig
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.progress import Progress
from splitlm.curate.stage import atomic_write_text, run_stage, sha256_file, sha256_json
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.manifest import StageManifest


@dataclass(frozen=True)
class WindowsRunConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    windows: WindowsConfig = field(default_factory=WindowsConfig)


def input_fingerprint(inputs: list[Path | str]) -> str:
    from splitlm.curate.ingest import expand_inputs

    return sha256_json([[str(path), sha256_file(path)] for path, _ in expand_inputs(inputs)])


def document_batches(run: Path, batch_size: int = 512) -> Iterator[list[dict]]:
    """Accepted, non-duplicate documents in input order, in lists of `batch_size` rows."""
    from splitlm.curate.parts import iter_batches, read_table
    from splitlm.schemas.tables import DOCUMENTS, DUPLICATES

    removed = set(read_table(run / "dedup", "duplicates", DUPLICATES, columns=["doc_id"]).column(0).to_pylist())
    columns = ["doc_id", "text", "domain", "source"]
    for batch in iter_batches(run / "documents", "part", DOCUMENTS, columns=columns, batch_size=batch_size):
        docs = [row for row in batch.to_pylist() if row["doc_id"] not in removed]
        if docs:
            yield docs


def _stage(run: Path, name: str, config, fingerprint: str, build, progress: Progress, total=None,
           versions=()) -> StageManifest:
    with progress.stage(name, total) as advance:
        manifest, ran = run_stage(run, name, config, fingerprint, lambda out: build(out, advance),
                                  seed=getattr(config, "seed", 0), versions=versions)
    if not ran:
        progress.note(f"{name}: up to date, skipped")
    return manifest


def run_windows(inputs: list[Path | str], run: Path, config: WindowsRunConfig,
                progress: Progress | None = None) -> dict[str, Any]:
    """ingest -> dedup -> windows into `run`; returns the run summary (also `run/manifest.json`)."""
    from splitlm.curate.dedup import write_duplicates
    from splitlm.curate.ingest import DocumentReader, write_documents
    from splitlm.curate.windows import write_windows
    from splitlm.tokenizer import load_tokenizer

    progress = progress or Progress()
    run.mkdir(parents=True, exist_ok=True)
    reader = DocumentReader(inputs, config.ingest)  # validates the paths before any work
    docs = _stage(run, "documents", config.ingest, input_fingerprint(inputs),
                  lambda out, adv: write_documents(reader, out, adv), progress, versions=("pyarrow",))
    accepted = docs.counts["documents_accepted"]
    dedup = _stage(run, "dedup", config.dedup, docs.output_fingerprint,
                   lambda out, adv: write_duplicates(run / "documents", out, config.dedup, adv), progress,
                   total=accepted, versions=("datasketch",))
    tok = load_tokenizer(config.windows.tokenizer)  # fingerprint the tokenizer file, not just its name
    windows = _stage(run, "windows", config.windows,
                     sha256_json([dedup.output_fingerprint, tok.sha256]),
                     lambda out, adv: write_windows(document_batches(run), out, config.windows, adv), progress,
                     total=dedup.counts["documents_kept"], versions=("tokenizers",))
    summary = summarize(docs, dedup, windows)
    write_run_manifest(run, summary)
    return summary


def summarize(docs: StageManifest, dedup: StageManifest, windows: StageManifest) -> dict[str, Any]:
    w = windows.counts
    quarantined = docs.counts["documents_quarantined"]
    summary = {
        "documents_in": docs.counts["documents_in"],
        "documents_quarantined": quarantined,
        "documents_duplicate": dedup.counts["documents_duplicate"],
        "documents_dropped": w["documents_dropped"],
        "documents_windowed": w["documents_windowed"],
        "windows": w["windows"],
        "windows_val": w["windows_val"],
        "tokens": w["tokens"],
        "tokens_in": w["tokens_in"],
        "tokens_dropped": w["tokens_dropped"],
        "seq_len": w["seq_len"],
        "tokenizer": windows.config["tokenizer"],
        "tokenizer_sha256": w["tokenizer_sha256"],
        "vocab_size": w["vocab_size"],
        "eos_id": w["eos_id"],
        "policy": windows.config["policy"],
        "seed": windows.config["seed"],
    }
    accounted = (sum(quarantined.values()) + summary["documents_duplicate"] + summary["documents_dropped"]
                 + summary["documents_windowed"])
    assert accounted == summary["documents_in"], f"document accounting is off: {accounted} != {summary}"
    assert summary["tokens"] + summary["tokens_dropped"] == summary["tokens_in"], "token accounting is off"
    return summary


def write_run_manifest(run: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(run / "manifest.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class ClusterRunConfig:
    windows: WindowsRunConfig = field(default_factory=WindowsRunConfig)
    embeddings: "EmbeddingsConfig" = None  # type: ignore[assignment]
    clusters: "ClustersConfig" = None  # type: ignore[assignment]
    shards: "ShardsConfig" = None  # type: ignore[assignment]
    cards: "CardsConfig" = None  # type: ignore[assignment]

    def __post_init__(self):
        # Defaults resolved here so importing this module stays light (no torch/faiss).
        from splitlm.curate.cards import CardsConfig
        from splitlm.curate.clusters import ClustersConfig
        from splitlm.curate.embeddings import EmbeddingsConfig
        from splitlm.curate.shards import ShardsConfig

        for name, default in (("embeddings", EmbeddingsConfig), ("clusters", ClustersConfig),
                              ("shards", ShardsConfig), ("cards", CardsConfig)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default())


def run_cluster(inputs: list[Path | str], run: Path, config: ClusterRunConfig,
                progress: Progress | None = None) -> dict[str, Any]:
    """windows -> embeddings -> clusters -> shards -> cards; returns the run summary."""
    from splitlm.curate.card_markdown import write_cards
    from splitlm.curate.cards import build_cards
    from splitlm.curate.clusters import write_clusters
    from splitlm.curate.embeddings import write_embeddings
    from splitlm.curate.shards import write_shards
    from splitlm.curate.stage import config_dict, library_versions
    from splitlm.errors import ConfigError

    progress = progress or Progress()
    summary = run_windows(inputs, run, config.windows, progress)
    k = config.clusters.kmeans.k
    if summary["windows"] == 0:
        raise ConfigError(f"no windows to cluster: all {summary['documents_in']} documents were quarantined, "
                          f"duplicates or shorter than one window (see {run / 'manifest.json'})")
    if k > summary["windows"] - summary["windows_val"]:
        raise ConfigError(f"--k {k} is larger than the {summary['windows'] - summary['windows_val']} training "
                          "windows: lower --k or add data")
    stages = {s: StageManifest.read(run / s / "manifest.json") for s in ("documents", "dedup", "windows")}
    corpus = stages["documents"].input_fingerprint
    emb_cfg = config.embeddings
    emb_key = sha256_json([config_dict(emb_cfg), stages["windows"].output_fingerprint])
    emb = _stage(run, "embeddings", emb_cfg, stages["windows"].output_fingerprint,
                 lambda out, adv: write_embeddings(run, out, emb_cfg, emb_key, adv), progress,
                 total=summary["windows"], versions=("torch", "sentence-transformers", "transformers"))
    clusters = _stage(run, "clusters", config.clusters, sha256_json([emb.output_fingerprint, corpus]),
                      lambda out, adv: write_clusters(run, out, config.clusters, corpus, adv), progress,
                      total=summary["windows"], versions=("faiss-cpu",))
    shards = _stage(run, "shards", config.shards,
                    sha256_json([clusters.output_fingerprint, stages["windows"].output_fingerprint]),
                    lambda out, adv: write_shards(run, out, config.shards, adv), progress, total=summary["windows"])
    config_hash = sha256_json(config_dict(config))
    provenance = {"run": run.name, "config_hash": config_hash, "corpus_fingerprint": corpus,
                  "embedder": emb.counts["embedder"], "tokenizer": summary["tokenizer"],
                  "versions": library_versions("torch", "transformers", "sentence-transformers", "faiss-cpu",
                                               "tokenizers")}
    _stage(run, "cards", {"cards": config_dict(config.cards), "provenance": provenance},
           sha256_json([shards.output_fingerprint, clusters.output_fingerprint, stages["dedup"].output_fingerprint]),
           lambda out, adv: write_cards(build_cards(run, config.cards, provenance), clusters.counts, out), progress,
           total=k)
    summary.update({"k": k, "embed_mode": emb.counts["embedder"]["mode"], "clusters": clusters.counts,
                    "shards": shards.counts})
    write_run_manifest(run, summary)
    return summary
