"""`curate`: turn corpora into windows, clusters, shards and cards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from splitlm.cli._run import run

app = typer.Typer(help="Curate corpora into semantic domains (windows, clusters, shards, cards).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Curate corpora into semantic domains."""

# Options shared by `windows` and `cluster`, declared once.
Inputs = Annotated[list[Path], typer.Argument(help="Corpus files or folders (.jsonl[.gz|.zst], .parquet, .txt).")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Run folder to write (stages resume inside it).")]
SeqLen = Annotated[int, typer.Option(help="Tokens per training sequence; windows hold seq_len + 1.")]
Tokenizer = Annotated[str, typer.Option(help="`gpt2`, a tokenizer.json, a folder with one, or a cached hub name.")]
TextField = Annotated[str, typer.Option(help="Dotted path of the text field.")]
IdField = Annotated[str, typer.Option(help="Dotted path of the id field (generated when absent).")]
DomainField = Annotated[Optional[str], typer.Option(help="Dotted path of a domain label, e.g. meta.pile_set_name.")]
Policy = Annotated[str, typer.Option(help="Leftover policy: concat (join documents with EOS) or drop.")]
Strict = Annotated[bool, typer.Option("--strict", help="Fail on the first bad row instead of quarantining it.")]
Seed = Annotated[int, typer.Option(help="Seed for the validation hold-out (and clustering).")]
NoDedup = Annotated[bool, typer.Option("--no-dedup", help="Skip exact and near-duplicate removal.")]
DedupThreshold = Annotated[float, typer.Option(help="MinHash Jaccard threshold for near duplicates.")]
ValFraction = Annotated[float, typer.Option(help="Share of documents held out for validation.")]
MaxChars = Annotated[int, typer.Option(help="Quarantine documents longer than this many characters.")]
ValMaxDocs = Annotated[int, typer.Option(help="Validation documents kept per cluster.")]
ValMinWindows = Annotated[int, typer.Option(
    help="Validation windows every cluster gets (moved from its training set, whole documents).")]
PartMb = Annotated[float, typer.Option(
    help="Megabytes per part: input per file group (the unit of work), token and vector files.")]
Engine = Annotated[str, typer.Option(help="local (this process) or ray (tasks and embedder actors on Ray).")]
EmbedderName = Annotated[str, typer.Option(
    "--embedder", help="minilm (all-MiniLM-L6-v2) or static (distilled from it by `splitlm assets`; far faster on CPU).")]
EmbedMode = Annotated[Optional[str], typer.Option(
    help="truncate (the first 256 word pieces) or mean (the whole window). Default: truncate for minilm, mean for static.")]
Precision = Annotated[str, typer.Option(
    help="MiniLM's arithmetic: auto, fp32, bf16 (CPU with AMX/AVX512-BF16), fp16 (GPU), int8 (ONNX Runtime, CPU).")]
RouterName = Annotated[str, typer.Option(
    help="centroid (nearest biased centroid) or learned (a head on top, fitted on training-window prefixes).")]
RayAddress = Annotated[Optional[str], typer.Option(
    help="Ray cluster to join with --engine ray (e.g. HEAD:6379, auto); default starts a local one.")]


def windows_config(seq_len, tokenizer, text_field, id_field, domain_field, policy, strict, seed, no_dedup,
                   dedup_threshold, val_fraction, max_chars, part_mb=256.0):
    from splitlm.curate.dedup import DedupConfig
    from splitlm.curate.ingest import IngestConfig
    from splitlm.curate.pipeline import WindowsRunConfig
    from splitlm.curate.windows import WindowsConfig

    return WindowsRunConfig(
        ingest=IngestConfig(text_field=text_field, id_field=id_field, domain_field=domain_field,
                            max_chars=max_chars, strict=strict, part_mb=part_mb),
        dedup=DedupConfig(enabled=not no_dedup, threshold=dedup_threshold),
        windows=WindowsConfig(seq_len=seq_len, tokenizer=tokenizer, policy=policy, val_fraction=val_fraction,
                              seed=seed, part_mb=part_mb),
    )


def engine_options(engine: str, ray_address: str | None, ray_workers: int = 0):
    from splitlm.curate.engine.run import EngineConfig

    return EngineConfig(engine, ray_address, ray_workers)


def routing_options(router: str, seed: int):
    from splitlm.curate.routing.stage import RoutingConfig

    return RoutingConfig(router=router, seed=seed)


@app.command()
def windows(
    inputs: Inputs,
    out: Out,
    seq_len: SeqLen = 2048,
    tokenizer: Tokenizer = "gpt2",
    text_field: TextField = "text",
    id_field: IdField = "id",
    domain_field: DomainField = None,
    policy: Policy = "concat",
    strict: Strict = False,
    seed: Seed = 0,
    no_dedup: NoDedup = False,
    dedup_threshold: DedupThreshold = 0.8,
    val_fraction: ValFraction = 0.02,
    max_chars: MaxChars = 50_000_000,
    part_mb: PartMb = 256.0,
    engine: Engine = "local",
    ray_address: RayAddress = None,
) -> None:
    """Ingest, deduplicate and cut corpora into windows of seq_len + 1 tokens."""
    from splitlm.cli.progress import RichProgress
    from splitlm.cli.tables import print_windows_summary
    from splitlm.curate.pipeline import run_windows

    config = windows_config(seq_len, tokenizer, text_field, id_field, domain_field, policy, strict, seed,
                            no_dedup, dedup_threshold, val_fraction, max_chars, part_mb)
    summary = run_windows(inputs, out, config, RichProgress(), engine_options(engine, ray_address))
    print_windows_summary(summary, out)


@app.command()
def cluster(
    inputs: Inputs,
    out: Out,
    k: Annotated[int, typer.Option(help="Number of clusters (paper default 16).")] = 16,
    iters: Annotated[int, typer.Option(help="k-means iterations.")] = 20,
    sample_per_centroid: Annotated[int, typer.Option(help="k-means fit sample per cluster.")] = 512,
    capacity_eps: Annotated[Optional[float], typer.Option(help="Hard cap (1+eps)·N/K per cluster.")] = None,
    embedder: EmbedderName = "minilm",
    embed_mode: EmbedMode = None,
    precision: Precision = "auto",
    embed_storage: Annotated[str, typer.Option(help="float32 or float16 vectors on disk.")] = "float32",
    embed_part_size: Annotated[int, typer.Option(help="Windows per resumable embedding part.")] = 512,
    engine: Engine = "local", ray_address: RayAddress = None, part_mb: PartMb = 256.0,
    ray_workers: Annotated[int, typer.Option(help="Embedder actors under Ray (0: one per CPU or GPU).")] = 0,
    val_max_docs: ValMaxDocs = 10_000, val_min_windows: ValMinWindows = 4,
    prefix_tokens: Annotated[int, typer.Option(help="Router prefix length in tokens (route, cards, eval use it).")] = 32,
    router: RouterName = "centroid",
    seq_len: SeqLen = 2048, tokenizer: Tokenizer = "gpt2",
    text_field: TextField = "text",
    id_field: IdField = "id",
    domain_field: DomainField = None,
    policy: Policy = "concat",
    strict: Strict = False,
    seed: Seed = 0,
    no_dedup: NoDedup = False,
    dedup_threshold: DedupThreshold = 0.8,
    val_fraction: ValFraction = 0.02,
    max_chars: MaxChars = 50_000_000,
) -> None:
    """Windows, then embed, balanced k-means, router, per-cluster shards and cluster cards."""
    from splitlm.cli import progress, tables
    from splitlm.curate.cluster.kmeans import KMeansConfig
    from splitlm.curate.cluster.stage import ClustersConfig
    from splitlm.curate.embed.config import EmbedConfig
    from splitlm.curate.embed.stage import EmbeddingsConfig
    from splitlm.curate.pipeline import ClusterRunConfig, run_cluster
    from splitlm.curate.shards import ShardsConfig

    config = ClusterRunConfig(
        windows=windows_config(seq_len, tokenizer, text_field, id_field, domain_field, policy, strict, seed,
                               no_dedup, dedup_threshold, val_fraction, max_chars, part_mb),
        embeddings=EmbeddingsConfig(embed=EmbedConfig(name=embedder, mode=embed_mode, precision=precision),
                                    storage=embed_storage, part_size=embed_part_size, part_mb=part_mb),
        clusters=ClustersConfig(KMeansConfig(k=k, iters=iters, seed=seed, sample_per_centroid=sample_per_centroid,
                                             capacity_eps=capacity_eps), prefix_tokens=prefix_tokens),
        shards=ShardsConfig(val_max_docs=val_max_docs, val_min_windows=val_min_windows),
        routing=routing_options(router, seed),
    )
    engine_config = engine_options(engine, ray_address, ray_workers)
    tables.print_cluster_summary(run_cluster(inputs, out, config, progress.RichProgress(), engine_config), out)


@app.command()
def route(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `curate cluster`.")],
    inputs: Inputs,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL to write: one line per input row.")],
    prefix_tokens: Annotated[Optional[int], typer.Option(
        help="Route by this many leading tokens (default: the router's own prefix length).")] = None,
    text_field: TextField = "text",
    id_field: IdField = "id",
    batch_size: Annotated[int, typer.Option(help="Documents routed per batch.")] = 256,
    min_confidence: Annotated[Optional[float], typer.Option(
        help="Mark rows whose calibrated probability is below this with fallback: mixture.")] = None,
) -> None:
    """Route documents to clusters by their prefix, with the run's router."""
    from splitlm.curate.ingest import IngestConfig
    from splitlm.curate.route import route_documents

    counts = route_documents(run_dir, inputs, out, IngestConfig(text_field=text_field, id_field=id_field),
                             prefix_tokens, batch_size, min_confidence)
    fallback = f", {counts['fallback']:,} below --min-confidence -> fallback mixture" if min_confidence else ""
    typer.echo(f"routed {counts['routed']:,} documents ({counts['rejected']:,} rejected rows, each with its reason"
               f"{fallback}) -> {out}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `curate cluster`.")],
    format: Annotated[str, typer.Option("--format", help="megatron (.bin/.idx) or parquet.")] = "parquet",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder (default RUN/export/FORMAT).")] = None,
) -> None:
    """Export the shards for other trainers: Megatron indexed datasets or Parquet."""
    from splitlm.curate.export import export_run

    target = export_run(run_dir, format, out)
    typer.echo(f"exported {run_dir} as {format} -> {target}")


@app.command()
def inspect(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `curate cluster`.")],
    label_field: Annotated[Optional[str], typer.Option(
        help="Labels to cross with clusters: domain (the ingest --domain-field, default), source (input file), "
             "or any other dotted field, re-read from the corpus files recorded at ingest.")] = None,
    prefix_lengths: Annotated[str, typer.Option(help="Comma-separated prefix lengths in tokens (the router's own is always added).")]
    = "1,2,4,8,16,32,64,128,256",
    sample: Annotated[int, typer.Option(help="Windows sampled for routing; also the R@k pool N (paper: 10,000).")]
    = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the window sample.")] = 0,
    split: Annotated[str, typer.Option(help="Sample val (held out), train or all windows.")] = "val",
    reference: Annotated[int, typer.Option(help="Reference cluster of the App. F similarity pairs.")] = 0,
    cv_windows: Annotated[int, typer.Option(
        help="Training windows (a seeded sample) in routing_cv.csv's 5-fold cross-validation.")] = 4000,
) -> None:
    """Audit a clustering: domains x clusters, prefix routing, cluster similarity -> RUN/inspect/ (report.md)."""
    from splitlm.cli.progress import RichProgress
    from splitlm.cli.tables import print_inspect_summary
    from splitlm.curate.inspect.stage import InspectConfig, parse_prefix_lengths, run_inspect

    config = InspectConfig(label_field=label_field, prefix_lengths=parse_prefix_lengths(prefix_lengths),
                           sample=sample, seed=seed, split=split, reference=reference, cv_windows=cv_windows)
    print_inspect_summary(run_inspect(run_dir, config, RichProgress()), run_dir / "inspect")


@app.command()
def verify(run_dir: Annotated[Path, typer.Argument(help="A run folder written by `curate windows` or `cluster`.")]) -> None:
    """Re-hash every file of a run against its stage manifests; name any file that changed."""
    from splitlm.cli.tables import print_verified

    print_verified(run_dir)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
