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


def windows_config(seq_len, tokenizer, text_field, id_field, domain_field, policy, strict, seed, no_dedup,
                   dedup_threshold, val_fraction, max_chars):
    from splitlm.curate.dedup import DedupConfig
    from splitlm.curate.ingest import IngestConfig
    from splitlm.curate.pipeline import WindowsRunConfig
    from splitlm.curate.windows import WindowsConfig

    return WindowsRunConfig(
        ingest=IngestConfig(text_field=text_field, id_field=id_field, domain_field=domain_field,
                            max_chars=max_chars, strict=strict),
        dedup=DedupConfig(enabled=not no_dedup, threshold=dedup_threshold),
        windows=WindowsConfig(seq_len=seq_len, tokenizer=tokenizer, policy=policy, val_fraction=val_fraction,
                              seed=seed),
    )


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
) -> None:
    """Ingest, deduplicate and cut corpora into windows of seq_len + 1 tokens."""
    from splitlm.cli.tables import print_windows_summary
    from splitlm.curate.pipeline import run_windows
    from splitlm.curate.progress import RichProgress

    config = windows_config(seq_len, tokenizer, text_field, id_field, domain_field, policy, strict, seed,
                            no_dedup, dedup_threshold, val_fraction, max_chars)
    summary = run_windows(inputs, out, config, RichProgress())
    print_windows_summary(summary, out)


def main() -> None:
    run(app)


if __name__ == "__main__":
    main()
