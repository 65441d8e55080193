"""The one error policy.

Every failure splitlm raises on purpose is a `SplitlmError`: the entry points print its message as
one line on stderr (naming the file, line or flag) and exit 1. Anything else is a bug in splitlm or
in a library under it: `report_internal` saves the traceback to a file and prints one line that
points to it, so a user never sees a dump but can always attach one to a bug report.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path


class SplitlmError(Exception):
    """A user-facing error: the message names the input (file:line, flag) and what to do."""


class InputError(SplitlmError):
    """A corpus file or row cannot be read."""


class ConfigError(SplitlmError):
    """A flag or config value is invalid, or incompatible with the data."""


class AssetError(SplitlmError):
    """An offline asset (tokenizer, corpus) is missing or corrupt."""


class SchemaError(SplitlmError):
    """A file on disk does not match the data contract it should follow."""


def one_line(err: BaseException) -> str:
    """The message on one line: later lines are folded in, so nothing is dropped."""
    text = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    return text or type(err).__name__


def crash_folder() -> Path:
    """Where tracebacks go: $SPLITLM_CRASH_DIR, else a `splitlm-crashes` folder in the temp dir."""
    return Path(os.environ.get("SPLITLM_CRASH_DIR") or Path(tempfile.gettempdir()) / "splitlm-crashes")


def report_internal(err: BaseException) -> str:
    """Save `err`'s traceback to a new file and return the one line to print."""
    text = "".join(traceback.format_exception(err)) or repr(err)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        folder = crash_folder()
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{stamp}-", suffix=".txt", dir=folder)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        where = f"traceback saved to {name}"
    except OSError as save_err:  # nowhere to save it: say so rather than lose the cause
        where = f"could not save the traceback ({save_err.strerror})"
    return f"internal error: {type(err).__name__}: {one_line(err)[:300]} ({where}; please report it)"
