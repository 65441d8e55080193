"""`train split` and `train eval`: split training on a curated run, and routed evaluation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9}


def parse_tokens(text: str, flag: str) -> int:
    """`250000`, `250k`, `1.5M`, `2e6` -> tokens."""
    from splitlm.core.errors import ConfigError

    value = text.strip().lower()
    scale = _SUFFIX.get(value[-1:], 1)
    try:
        number = float(value[:-1] if scale > 1 else value) * scale
    except ValueError:
        raise ConfigError(f"{flag} {text}: not a token count (examples: 250000, 250k, 1.5M, 2e6)") from None
    if not math.isfinite(number) or number < 0 or number != int(number):
        raise ConfigError(f"{flag} {text}: need a whole, non-negative, finite number of tokens")
    return int(number)


def _clusters(text: str) -> Optional[tuple[int, ...]]:
    from splitlm.core.errors import ConfigError

    if text == "all":
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise ConfigError(f"--clusters {text}: `all` or comma-separated cluster ids like 0,3") from None


def split_cmd(
    run: Annotated[Path, typer.Argument(help="Curated run folder (manifest.json + shards/); with --add-split-at, TRAIN.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="TRAIN folder: checkpoints, losses.csv/.parquet.")] = None,
    total_tokens: Annotated[Optional[str], typer.Option(help="D_T: pretraining + all K branches, e.g. 2M.")] = None,
    split_at: Annotated[Optional[str], typer.Option(help="Split points t_s in pretraining tokens, e.g. 0,500k,1M.")] = None,
    size: Annotated[str, typer.Option(help="tiny, mini, phonebook, 100M, 125M, 350M, 760M, 1.3B, 2.7B, 6.7B.")] = "tiny",
    arch: Annotated[str, typer.Option(help="gpt2 or llama.")] = "gpt2",
    clusters: Annotated[str, typer.Option(help="Branches to train: all, or ids like 0,3.")] = "all",
    eval_every: Annotated[str, typer.Option(help="Tokens between evaluations (default D_T/20).")] = "0",
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 8,
    warmup_tokens: Annotated[Optional[str], typer.Option(help="Pretraining warmup (default 1% of D_T).")] = None,
    eval_windows: Annotated[int, typer.Option(help="Validation windows per cluster per evaluation (0: all).")] = 256,
    precision: Annotated[str, typer.Option(help="auto (bf16 where supported), bf16 or fp32.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seeds the initial weights and the data order.")] = 0,
    checkpoint_every: Annotated[str, typer.Option(
        help="Tokens between pretraining's weight-only checkpoints, where splits can be added later (default D_T/20).")] = "0",
    keep_checkpoints: Annotated[str, typer.Option(
        help="Pretraining checkpoints kept at the end: all, split-points or last.")] = "all",
    add_split_at: Annotated[Optional[str], typer.Option(
        help="Branch the finished TRAIN (the argument) at one more split point, from its checkpoints.")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="With --add-split-at: refuse when no checkpoint is there.")] = False,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (one Ray task per job).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (default: start a local one).")] = None,
    parallel: Annotated[int, typer.Option(help="Local: jobs at once, each in its own process.")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per job process (0: torch default / cores split).")] = 0,
    procs_per_job: Annotated[int, typer.Option(help="Processes per job: DDP over them (gloo on CPUs).")] = 1,
    gpus_per_job: Annotated[int, typer.Option(help="Ray: GPUs per job, one DDP process each.")] = 0,
) -> None:
    """Pretrain on the mixture (the baseline, to D_T), branch at every split point, train each cluster."""
    from splitlm.train.config import Execution

    ex = Execution(engine=engine, parallel=parallel, threads=threads, ray_address=ray_address,
                   procs_per_job=procs_per_job, gpus_per_job=gpus_per_job, keep_checkpoints=keep_checkpoints)
    if add_split_at is not None:
        from splitlm.train.split import add_split

        train = run
        budget, table = add_split(train, parse_tokens(add_split_at, "--add-split-at"), exact, _clusters(clusters), ex)
        _print_results(train, budget, table)
        return
    cfg = _config(run, out, total_tokens, split_at, size=size, arch=arch, batch_size=batch_size, seed=seed,
                  eval_every=eval_every, warmup_tokens=warmup_tokens, eval_windows=eval_windows,
                  precision=precision, checkpoint_every=checkpoint_every)
    from splitlm.train.budget import prepare

    prepare(cfg, out, _clusters(clusters), parallel, threads)  # every check, before the training code loads
    from splitlm.train.split import split

    budget, table = split(cfg, out, _clusters(clusters), ex)
    _print_results(out, budget, table)


def _config(run: Path, out: Path | None, total_tokens: str | None, split_at: str | None, *, eval_every: str,
            warmup_tokens: str | None, checkpoint_every: str, **flags):
    from splitlm.core.errors import ConfigError
    from splitlm.train.config import SplitConfig

    missing = [flag for flag, value in (("--out", out), ("--total-tokens", total_tokens), ("--split-at", split_at))
               if value is None]
    if missing:
        raise ConfigError(f"{missing[0]} is required (unless --add-split-at adds to an existing TRAIN)")
    return SplitConfig(
        run=run, total_tokens=parse_tokens(total_tokens, "--total-tokens"),
        split_at=tuple(parse_tokens(t, "--split-at") for t in split_at.split(",")),
        eval_every=parse_tokens(eval_every, "--eval-every"),
        warmup_tokens=-1 if warmup_tokens is None else parse_tokens(warmup_tokens, "--warmup-tokens"),
        checkpoint_every=parse_tokens(checkpoint_every, "--checkpoint-every"), **flags,
    )  # fmt: skip


def _print_results(out: Path, budget, table: Path) -> None:
    from splitlm.schemas.layout import cluster_number
    from splitlm.schemas.run import RunSummary
    from splitlm.train import evaluate
    from splitlm.train.split import read_config

    if budget.note:
        typer.echo(f"note: {budget.note}")
    pairs = evaluate.compare_final(evaluate.collect_losses(out))
    k = RunSummary.read(read_config(out).run).k
    title = f"Validation loss at each split run's D + K x D': pretraining only vs split ({table}, + .parquet)"
    _print_table(title, ["split at", "cluster", "tokens", "baseline", "split", "change"], [
        [f"{r['split_at']:,}", cluster_number(r['cluster'], k), f"{r['split_total']:,}", f"{r['baseline_loss']:.4f}",
         f"{r['split_loss']:.4f}", f"{100 * (r['split_loss'] / r['baseline_loss'] - 1):+.2f}%"]
        for r in pairs
    ])  # fmt: skip
    for r in pairs:
        if r["baseline_tokens"] != r["split_total"]:
            typer.echo(f"note: split at {r['split_at']:,}: the baseline was not evaluated at {r['split_total']:,} "
                       f"tokens (the split was added later); compared at {r['baseline_tokens']:,}")
            break


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    from splitlm.cli.tables import console

    table = Table(title=title)
    for name in columns:
        table.add_column(name, justify="left" if name in ("kind", "group") else "right")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def eval_cmd(
    train: Annotated[Path, typer.Argument(help="TRAIN folder written by `train split`.")],
    run: Annotated[Path, typer.Option("--run", help="The curated run (shards, router).")],
    prefix_tokens: Annotated[Optional[int], typer.Option(
        help="Route by this many leading tokens (default: the router's own prefix length).")] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 8,
    by_domain: Annotated[bool, typer.Option("--by-domain", help=(
        "Also perplexity per label (paper Table 4): pretrained-only, the branch the label routes to most, "
        "routed; TRAIN/routed/by_domain.csv and .md."))] = False,
    label_field: Annotated[str, typer.Option(help=(
        "Column of the shards' index.parquet holding the labels; `domain` holds the run's --domain-field."
    ))] = "domain",
    likelihood: Annotated[bool, typer.Option(help=(
        "Also route each window by likelihood (the branch with the lowest loss on its prefix, as BTM) and report "
        "its agreement with the router and its perplexity."))] = True,
) -> None:
    """Routed evaluation: route each validation window by its prefix, score the rest, vs pretraining only."""
    from splitlm.train.evaluate import routed_eval

    rows = routed_eval(train, run, prefix_tokens=prefix_tokens, batch_size=batch_size, by_domain=by_domain,
                       label_field=label_field, likelihood=likelihood)
    columns = ["split at", "kind", "group", "windows", "routed home", "baseline ppl", "routed ppl", "change"]
    lik = any(r["likelihood_ppl"] is not None for r in rows)
    columns += ["lik. agrees", "lik. ppl", "lik. change"] if lik else []
    prefix = rows[0]["prefix_tokens"] if rows else prefix_tokens
    router = rows[0]["router"] if rows else "the run's"
    _print_table(f"Routed evaluation ({prefix}-token prefix, {router} router{', and by likelihood' if lik else ''})",
                 columns, [
        [f"{r['split_at']:,}", r["kind"], r["group"], str(r["windows"]), f"{r['routed_to_own']:.2f}",
         f"{r['baseline_ppl']:.2f}", f"{r['routed_ppl']:.2f}", f"{r['ppl_change_pct']:+.2f}%"]
        + ([f"{r['likelihood_agree']:.2f}", f"{r['likelihood_ppl']:.2f}", f"{r['likelihood_change_pct']:+.2f}%"]
           if lik and r["likelihood_ppl"] is not None else ["", "", ""] if lik else [])
        for r in rows
    ])  # fmt: skip
    typer.echo(f"wrote {train / 'routed' / 'routed_eval.csv'} and routed_eval.png")
    if by_domain:
        from splitlm.train import evaluate_domains

        rows = evaluate_domains.read(train / "routed")
        _print_table(f"Perplexity by {label_field} (paper Table 4 style)", [
            "split at", "group", "windows", "top branch", "share", "pretrained ppl", "top-branch ppl", "routed ppl",
            "top-branch change", "routed change"], [
            [f"{int(r['split_at']):,}", r["domain"], r["windows"], r["top_branch"], r["top_share"], r["pretrained_ppl"],
             r["top_branch_ppl"], r["routed_ppl"], f"{float(r['top_branch_change_pct']):+.2f}%",
             f"{float(r['routed_change_pct']):+.2f}%"]
            for r in rows
        ])  # fmt: skip
        typer.echo(f"wrote {train / 'routed' / 'by_domain.csv'} and by_domain.md")


def register(app: typer.Typer) -> None:
    app.command("split")(split_cmd)
    app.command("eval")(eval_cmd)
