"""The CLI: `--help` is instant (no heavy imports) and user errors are one line with exit code 1."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from splitlm.cli.main import main; sys.argv[0]='splitlm'; main()",
                           *args], capture_output=True, text=True)


@pytest.mark.parametrize("group", ["curate", "train"])
def test_help_does_not_import_heavy_libraries(group):
    code = (f"import sys; from splitlm.cli.{group} import app; from typer.testing import CliRunner;"
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
            "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss', 'polars', 'scipy')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_input_is_one_line_error(tmp_path):
    proc = _run("curate", "windows", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file or folder"


def test_bad_flag_value_is_one_line_error(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    proc = _run("curate", "windows", str(corpus), "--out", str(tmp_path / "run"), "--policy", "pad")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: --policy must be one of") and proc.stderr.count("\n") == 1
