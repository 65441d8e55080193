"""`curate`: turn corpora into windows, clusters, shards and cards."""

from __future__ import annotations

import typer

from splitlm.cli._run import run

app = typer.Typer(help="Curate corpora into semantic domains (windows, clusters, shards, cards).", no_args_is_help=True)


def main() -> None:
    run(app)
