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


def test_phonebook_show_prints_a_finished_sweep_and_refuses_other_files(tmp_path):
    from splitlm.train.phonebook.plot import read_csv, write_csv

    rows = [{"alpha": a, "budget": 1600, "pt_fraction": f, "accuracy": acc}
            for a, f, acc in [(0.0, 0.0, 0.3), (0.0, 0.75, 0.5), (0.0, 1.0, 0.125)]]
    write_csv(tmp_path / "phonebook.csv", rows)
    assert read_csv(tmp_path / "phonebook.csv") == rows
    proc = _run("train", "phonebook", "--show", str(tmp_path / "phonebook.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "│ 0%      │ 30.0 │ 50.0 │ 12.5 │" in proc.stdout
    assert "overlap 0%: splitting wins: split after 75% of the steps, 50.0%, +37.5 points against pretraining only" \
        in proc.stdout
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    for args, message in [(["--show", str(tmp_path / "other.csv")], f"error: {tmp_path / 'other.csv'}: columns"),
                          ([], "error: train phonebook: give --out DIR"),
                          (["--show", str(tmp_path / "nope.csv")], f"error: {tmp_path / 'nope.csv'}: cannot read")]:
        proc = _run("train", "phonebook", *args)
        assert proc.returncode == 1 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
