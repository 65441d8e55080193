"""`train`: split training (split, eval) and scaling laws (fit, plan).

Each group of commands lives in its own module and registers itself on this app.
"""

from __future__ import annotations

import typer

from splitlm.cli._run import run

app = typer.Typer(help="Train split models and fit the split scaling law.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Train split models and fit the split scaling law."""


def _register() -> None:
    import importlib

    for name in ("splitlm.cli.train_scaling", "splitlm.cli.train_split"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # a command group not written yet
            if err.name != name:
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    run(app)
