"""Rich markup in user strings is printed as text by every summary table (item 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from splitlm.cli.tables import print_inspect_summary

SHIPPED = Path(__file__).resolve().parents[2] / "data_cards" / "inspect" / "summary.json"
MARKUP = "[/bold]"


def test_inspect_summary_prints_markup_labels_as_text(tmp_path, capsys):
    summary = json.loads(SHIPPED.read_text())
    labels = summary["domains"]["labels"]
    summary["domains"]["labels"] = [f"{MARKUP}{labels[0]}", *labels[1:]]
    summary["domains"]["field"] = f"{MARKUP}domain"
    print_inspect_summary(summary, tmp_path / f"{MARKUP}inspect")
    out = re.sub(r"\s*\n\s*", "", capsys.readouterr().out)  # rich wraps long titles and paths
    assert f"{MARKUP}{labels[0]}" in out and f"{MARKUP}domain" in out and f"{MARKUP}inspect" in out
