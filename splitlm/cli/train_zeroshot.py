"""`train zeroshot`: routed zero-shot QA on the provisioned validation sets, split vs pretraining only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DEFAULT_TASKS = "arc_easy,arc_challenge,piqa,hellaswag,sciq,boolq,winogrande,mmlu"


def zeroshot_cmd(
    train: Annotated[Path, typer.Argument(help="TRAIN folder written by `train split`.")],
    tasks: Annotated[str, typer.Option(help="Comma-separated tasks.")] = DEFAULT_TASKS,
    limit: Annotated[int, typer.Option(help="First N questions of each task (MMLU: of each subject); 0: all.")] = 0,
    split_at: Annotated[Optional[str], typer.Option(
        help="Split points to evaluate, e.g. 0,500k (default: every one TRAIN has).")] = None,
    route_by: Annotated[str, typer.Option(help="router (the embedding router) or likelihood.")] = "router",
    max_loaded: Annotated[int, typer.Option(help="Branches kept in memory at once.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 8,
) -> None:
    """Score each question with its routed branch, the best single branch and the pretraining-only model.

    Runs lm-evaluation-harness (its task YAMLs, on the provisioned Arrow folders) offline.
    """
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # the harness's per-task progress bars
    from splitlm.cli.train_split import parse_tokens
    from splitlm.core.errors import ConfigError
    from splitlm.train import flags
    from splitlm.train.zeroshot.taskconfigs import parse_tasks

    chosen = parse_tasks(tasks)
    flags.number("--limit", limit, least=0, meaning="0: all")
    flags.number("--max-loaded", max_loaded, least=1, meaning="branches in memory")
    flags.number("--batch-size", batch_size, least=1, meaning="sequences per forward pass")
    if route_by not in ("router", "likelihood"):
        raise ConfigError(f"--route-by {route_by}: choose router or likelihood")
    points = None if split_at is None else [parse_tokens(t, "--split-at") for t in split_at.split(",")]
    from splitlm.assets import zeroshot_path
    from splitlm.train.zeroshot import report, run

    rows, routing = run.evaluate(train, zeroshot_path(), chosen, limit, points, max_loaded, batch_size, route_by,
                                 log=lambda m: typer.echo(m, err=True))
    paths = report.write(train / "zeroshot", rows, routing)
    typer.echo(paths["table"].read_text())
    typer.echo(f"wrote {paths['results']}, {paths['table'].name}, {paths['routing'].name}, {paths['plot'].name}")


def register(app: typer.Typer) -> None:
    app.command("zeroshot")(zeroshot_cmd)
