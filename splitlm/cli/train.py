"""`train`: split training (split, eval), evaluation (zeroshot, phonebook) and scaling laws (fit, plan).

Each group of commands lives in its own module and registers itself on this app.
"""

from __future__ import annotations

import typer

from splitlm.cli import train_phonebook, train_scaling, train_split, train_zeroshot
from splitlm.cli._run import run

app = typer.Typer(help="Train split models and fit the split scaling law.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Train split models and fit the split scaling law."""


train_phonebook.register(app)
train_scaling.register(app)
train_split.register(app)
train_zeroshot.register(app)


def main() -> None:
    run(app)
