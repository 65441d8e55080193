"""The bad-input suite's one way to run a command: a real subprocess, as a user would.

`cli(tmp_path, "curate", "windows", ...)` runs `splitlm curate windows ...` with tracebacks sent to
`tmp_path/crashes`; `assert_clean_error` checks the error policy of `splitlm.core.errors`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ENTRY = "import sys; from splitlm.cli.main import main; sys.argv[0] = 'splitlm'; main()"


@pytest.fixture
def cli(tmp_path):
    def run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "SPLITLM_CRASH_DIR": str(tmp_path / "crashes"), "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=timeout)
    return run


def assert_clean_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 1, one `error:` line on stderr naming every string in `names`, no traceback anywhere."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]
