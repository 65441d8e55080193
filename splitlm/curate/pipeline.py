"""The curation pipeline: a list of stages, each a folder under RUN joined only through files.

    documents (ingest) -> dedup -> windows            `curate windows`
      -> embeddings -> clusters -> shards -> routing -> cards     `curate cluster`

Each stage is per-part maps (run anywhere, in any order, retried one at a time; `--engine ray`
runs them as Ray tasks or actors) and named barriers (need the whole corpus; cheap and streaming):

    stage        map (per part)                          barrier
    documents    ingest one file group                   duplicate ids across groups
    dedup        MinHash signatures + band keys of one   documents sharing a band or key (a reduce per
                 file group                              partition); LSH replay of those, in document order
    windows      tokenise + pack one file group          global window ids (groups in order)
    embeddings   the embedder over one part of windows   -
    clusters     assign one part of rows (its own file)  the k-means fit on a sample; the cap, if set
    shards       copy one token part to cluster pieces   validation cap and floor; merging a cluster's pieces
    routing      -                                       embed training prefixes, fit temperatures (+ head)
    cards        statistics read part by part            -

Each stage is skipped when its folder's manifest matches its config, algorithm version and input
fingerprint (`splitlm.curate.stage`), so a rerun with nothing changed costs seconds, and a
changed option recomputes that stage onwards. `RUN/manifest.json` sums the run up
(`splitlm.schemas.run.RunSummary`); its document counts add up to `documents_in`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from splitlm.core.errors import ConfigError
from splitlm.core.hashing import canonical, sha256_file, sha256_json
from splitlm.core.parts import iter_batches, read_table
from splitlm.core.paths import out_folder
from splitlm.core.progress import Progress
from splitlm.core.stage import library_versions, work_dir
from splitlm.curate import dedup, ingest, shards, windows
from splitlm.curate.cards import build as cards
from splitlm.curate.cards import markdown as card_markdown
from splitlm.curate.cluster import stage as cluster_stage
from splitlm.curate.embed import stage as embed_stage
from splitlm.curate.engine import stages
from splitlm.curate.engine.run import Engine, EngineConfig
from splitlm.curate.routing import stage as routing_stage
from splitlm.curate.stage import run_with_progress as _stage
from splitlm.schemas.layout import RunLayout
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.router import EmbedderSpec
from splitlm.schemas.run import RunSummary
from splitlm.schemas.tables import DOCUMENTS, DUPLICATES
from splitlm.tokenizer import load_tokenizer


@dataclass(frozen=True)
class WindowsRunConfig:
    ingest: ingest.IngestConfig = field(default_factory=ingest.IngestConfig)
    dedup: dedup.DedupConfig = field(default_factory=dedup.DedupConfig)
    windows: windows.WindowsConfig = field(default_factory=windows.WindowsConfig)


@dataclass(frozen=True)
class ClusterRunConfig:
    windows: WindowsRunConfig = field(default_factory=WindowsRunConfig)
    embeddings: embed_stage.EmbeddingsConfig = field(default_factory=embed_stage.EmbeddingsConfig)
    clusters: cluster_stage.ClustersConfig = field(default_factory=cluster_stage.ClustersConfig)
    shards: shards.ShardsConfig = field(default_factory=shards.ShardsConfig)
    routing: routing_stage.RoutingConfig = field(default_factory=routing_stage.RoutingConfig)
    cards: cards.CardsConfig = field(default_factory=cards.CardsConfig)


def input_fingerprint(reader: ingest.DocumentReader) -> str:
    return sha256_json([[str(path), sha256_file(path)] for path, _ in reader.files])


def document_batches(run: Path, batch_size: int = 512) -> Iterator[list[dict]]:
    """Accepted, non-duplicate documents in input order, in lists of `batch_size` rows."""
    removed = set(read_table(run / "dedup", "duplicates", DUPLICATES, columns=["doc_id"]).column(0).to_pylist())
    columns = ["doc_id", "text", "domain", "source"]
    for batch in iter_batches(run / "documents", "part", DOCUMENTS, columns=columns, batch_size=batch_size):
        docs = [row for row in batch.to_pylist() if row["doc_id"] not in removed]
        if docs:
            yield docs


def run_windows(inputs: list[Path | str], run: Path, config: WindowsRunConfig, progress: Progress | None = None,
                engine: EngineConfig | Engine | None = None) -> RunSummary:
    """ingest -> dedup -> windows into `run`; returns the run summary (also `run/manifest.json`).

    `engine` runs the per-group maps here (`local`, the default) or as Ray tasks; both write the same bytes.
    """
    progress = progress or Progress()
    run = out_folder(run)
    reader = ingest.DocumentReader(inputs, config.ingest, run)  # validates the paths before any work
    run.mkdir(parents=True, exist_ok=True)
    with _engine(engine) as eng:
        def scratch(stage: str, cfg, fingerprint: str) -> Path:
            return work_dir(run, stage, sha256_json([canonical(cfg), fingerprint]))

        fp = input_fingerprint(reader)
        docs = _stage(run, "documents", config.ingest, fp,
                      lambda out, adv: stages.build_documents(reader, config.ingest, out,
                                                              scratch("documents", config.ingest, fp), eng, adv),
                      progress, algorithm=ingest.ALGORITHM, versions=("pyarrow",))
        fp = docs.output_fingerprint
        kept = _stage(run, "dedup", config.dedup, fp,
                      lambda out, adv: stages.build_dedup(run, config.dedup, out, scratch("dedup", config.dedup, fp),
                                                          eng, adv),
                      progress, algorithm=dedup.ALGORITHM, total=docs.counts["documents_accepted"],
                      versions=("datasketch",))
        tok = load_tokenizer(config.windows.tokenizer)  # fingerprint the tokenizer file, not just its name
        fp = sha256_json([kept.output_fingerprint, tok.sha256])
        wins = _stage(run, "windows", config.windows, fp,
                      lambda out, adv: stages.build_windows(run, config.windows, out,
                                                            scratch("windows", config.windows, fp), eng, adv),
                      progress, algorithm=windows.ALGORITHM, total=kept.counts["documents_kept"],
                      versions=("tokenizers",))
    summary = summarize(docs, kept, wins)
    summary.write(run)
    return summary


@contextmanager
def _engine(engine: EngineConfig | Engine | None) -> Iterator[Engine]:
    """An entered engine: the caller's own (already entered), or one made from a config for this call."""
    if isinstance(engine, Engine):
        yield engine
    else:
        with Engine(engine) as made:
            yield made


def summarize(docs: StageManifest, kept: StageManifest, wins: StageManifest) -> RunSummary:
    w = wins.counts
    return RunSummary(
        documents_in=docs.counts["documents_in"], documents_quarantined=docs.counts["documents_quarantined"],
        documents_duplicate=kept.counts["documents_duplicate"], documents_dropped=w["documents_dropped"],
        documents_windowed=w["documents_windowed"], windows=w["windows"], windows_val=w["windows_val"],
        tokens=w["tokens"], tokens_in=w["tokens_in"], tokens_dropped=w["tokens_dropped"], seq_len=w["seq_len"],
        tokenizer=wins.config["tokenizer"], tokenizer_sha256=w["tokenizer_sha256"], vocab_size=w["vocab_size"],
        eos_id=w["eos_id"], policy=wins.config["policy"], seed=wins.config["seed"],
        files_skipped={r: n for r, n in docs.counts.get("files_skipped", {}).items() if n} or None,
    )  # fmt: skip


def _check_clusterable(summary: RunSummary, k: int, run: Path) -> None:
    if summary.windows == 0:
        raise ConfigError(f"no windows to cluster: all {summary.documents_in} documents were quarantined, "
                          f"duplicates or shorter than one window (see {run / 'manifest.json'})")
    if k > summary.windows - summary.windows_val:
        raise ConfigError(f"--k {k} is larger than the {summary.windows - summary.windows_val} training "
                          "windows: lower --k or add data")


def run_cluster(inputs: list[Path | str], run: Path, config: ClusterRunConfig, progress: Progress | None = None,
                engine: EngineConfig | Engine | None = None) -> RunSummary:
    """windows -> embeddings -> clusters -> shards -> cards; returns the run summary."""
    progress = progress or Progress()
    with _engine(engine) as eng:
        summary = run_windows(inputs, run, config.windows, progress, eng)
        return _cluster_stages(run, config, summary, progress, eng)


def _cluster_stages(run: Path, config: ClusterRunConfig, summary: RunSummary, progress: Progress,
                    eng: Engine) -> RunSummary:
    k = config.clusters.kmeans.k
    _check_clusterable(summary, k, run)
    layout = RunLayout(run)
    up = {s: StageManifest.read(layout.stage_manifest(s)) for s in ("documents", "dedup", "windows")}
    corpus = up["documents"].input_fingerprint
    emb_cfg = config.embeddings
    emb_key = sha256_json([canonical(emb_cfg), up["windows"].output_fingerprint])
    emb = _stage(run, "embeddings", emb_cfg, up["windows"].output_fingerprint,
                 lambda out, adv: embed_stage.write_embeddings(run, out, emb_cfg, emb_key, adv, engine=eng),
                 progress,
                 algorithm=embed_stage.ALGORITHM, total=summary.windows,
                 versions=("torch", "sentence-transformers", "transformers", "model2vec", "onnxruntime"))
    clusters = _stage(run, "clusters", config.clusters, sha256_json([emb.output_fingerprint, corpus]),
                      lambda out, adv: cluster_stage.write_clusters(run, out, config.clusters, corpus, adv, eng),
                      progress,
                      algorithm=cluster_stage.ALGORITHM, total=summary.windows, versions=("faiss-cpu",))
    shard = _stage(run, "shards", config.shards,
                   sha256_json([clusters.output_fingerprint, up["windows"].output_fingerprint]),
                   lambda out, adv: shards.write_shards(run, out, config.shards, adv, eng), progress,
                   algorithm=shards.ALGORITHM, total=summary.windows)
    # routing reads the shards' training windows and the clusters router; cards route with what it fits
    route_fp = sha256_json([shard.output_fingerprint, clusters.output_fingerprint, up["windows"].output_fingerprint])
    route = _stage(run, "routing", config.routing, route_fp,
                   lambda out, adv: routing_stage.write_routing(run, out, config.routing, adv), progress,
                   algorithm=routing_stage.ALGORITHM, versions=("torch", "scipy", "safetensors"))
    provenance = {"config_hash": sha256_json(canonical(config)), "corpus_fingerprint": corpus,
                  # field order fixed by the spec, whether the stage ran now or was read back from disk
                  "embedder": EmbedderSpec(**emb.counts["embedder"]).model_dump(), "tokenizer": summary.tokenizer,
                  "versions": library_versions("torch", "transformers", "sentence-transformers", "faiss-cpu",
                                               "tokenizers")}
    _stage(run, "cards", {"cards": canonical(config.cards), "provenance": provenance},
           sha256_json([shard.output_fingerprint, clusters.output_fingerprint, up["dedup"].output_fingerprint,
                        route.output_fingerprint]),
           lambda out, adv: card_markdown.write_cards(cards.build_cards(run, config.cards, provenance), clusters.counts,
                                                      out),
           progress, algorithm=cards.ALGORITHM, total=k)
    summary = summary.model_copy(update={"k": k, "embed_mode": emb.counts["embedder"]["mode"],
                                         "clusters": clusters.counts, "shards": shard.counts})
    summary.write(run)
    return summary
