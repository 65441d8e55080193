"""`splitlm`: the umbrella command (assets, plus the curate and train apps)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from splitlm.cli import curate, train
from splitlm.cli._run import run

app = typer.Typer(help="splitlm: curate semantic domains and train split language models.", no_args_is_help=True)
app.add_typer(curate.app, name="curate")
app.add_typer(train.app, name="train")


@app.command()
def assets(
    cache: Annotated[Optional[Path], typer.Option(help="Asset cache folder (default: $SPLITLM_CACHE or ~/.cache/splitlm).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only verify; do not download.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Also build the int8 MiniLM graph (for --precision int8).")] = False,
    path: Annotated[Optional[str], typer.Option(help="Print only this asset's path: gpt2, demo, static, int8 or zeroshot.")] = None,
) -> None:
    """Provision the offline assets: GPT-2 tokenizer, demo corpus, static embedder (distilled); int8 MiniLM on request."""
    from splitlm import assets as assets_mod

    paths = assets_mod.provision(cache, check_only=check or path is not None, int8=int8 or path == "int8")
    if path is not None:
        names = {"gpt2": "gpt2 tokenizer", "demo": "demo corpus", "static": "static embedder", "int8": "int8 MiniLM",
                 "zeroshot": "zero-shot data"}
        if path not in names:
            raise typer.BadParameter(f"--path takes gpt2, demo, static, int8 or zeroshot, got {path!r}")
        typer.echo(paths[names[path]])
        return
    for name, target in paths.items():
        typer.echo(f"{name}: {target}")


def main() -> None:
    run(app)
