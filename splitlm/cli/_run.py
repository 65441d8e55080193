"""Shared entry-point wrapper: a SplitlmError becomes one line on stderr and exit code 1."""

from __future__ import annotations

import sys

import typer


def run(app: typer.Typer) -> None:
    import os

    from splitlm.errors import SplitlmError

    # Our own progress bars say what is happening; the hub's per-load bars only add noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    try:
        app()
    except SplitlmError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
