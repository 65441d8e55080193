"""Shared entry-point wrapper: a SplitlmError becomes one line on stderr and exit code 1."""

from __future__ import annotations

import sys

import typer


def run(app: typer.Typer) -> None:
    from splitlm.errors import SplitlmError

    try:
        app()
    except SplitlmError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
