"""The error policy itself: a SplitlmError is one line; a bug is one line plus a saved traceback."""

from __future__ import annotations

import subprocess
import sys

from splitlm.core.errors import ConfigError, one_line, report_internal

SCRIPT = """
import sys, typer
from splitlm.cli._run import run
from splitlm.core.errors import ConfigError
app = typer.Typer()
@app.command()
def go(kind: str):
    if kind == "config":
        raise ConfigError("--x must be positive,\\n got -1")
    raise ZeroDivisionError("boom")
run(app)
"""


def _run(tmp_path, *args):
    env = {"SPLITLM_CRASH_DIR": str(tmp_path / "crashes"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, env=env)


def test_splitlm_error_is_one_line_exit_1(tmp_path):
    result = _run(tmp_path, "config")
    assert result.returncode == 1
    assert result.stderr == "error: --x must be positive, got -1\n"
    assert not (tmp_path / "crashes").exists()


def test_internal_error_saves_a_nonempty_traceback_and_prints_one_line(tmp_path):
    result = _run(tmp_path, "bug")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("internal error: ZeroDivisionError: boom")
    saved = list((tmp_path / "crashes").iterdir())
    assert len(saved) == 1 and str(saved[0]) in lines[0]
    text = saved[0].read_text()
    assert text.startswith("Traceback") and "ZeroDivisionError: boom" in text


def test_usage_errors_keep_typers_exit_code_2(tmp_path):
    result = _run(tmp_path, "--no-such-flag")
    assert result.returncode == 2 and "No such option" in result.stderr


def test_one_line_folds_and_names_empty_messages():
    assert one_line(ConfigError("a\n\n  b ")) == "a b"
    assert one_line(KeyError()) == "KeyError"


def test_report_internal_says_when_the_traceback_cannot_be_saved(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("SPLITLM_CRASH_DIR", str(blocker / "under"))
    try:
        raise RuntimeError("x")
    except RuntimeError as err:
        line = report_internal(err)
    assert line.startswith("internal error: RuntimeError: x (could not save the traceback")
