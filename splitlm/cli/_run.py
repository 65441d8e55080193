"""Shared entry-point wrapper: the error policy of `splitlm.core.errors` at the process boundary.

A SplitlmError is one line on stderr and exit 1. Typer keeps its own usage errors (unknown flag,
wrong type: its panel, exit 2) and turns Ctrl-C into exit 130. Anything else is an internal error:
one line naming a saved traceback file, exit 1.
"""

from __future__ import annotations

import os
import sys

import typer

from splitlm.core.errors import SplitlmError, one_line, report_internal


def run(app: typer.Typer) -> None:
    # Our own progress bars say what is happening; the hub's per-load bars only add noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        app()
    except SplitlmError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the process boundary: every other failure is a bug
        print(report_internal(err), file=sys.stderr)
        sys.exit(1)
