"""Labels are data: a newline, `|` or NUL in a domain label never breaks a card or report table (item 9)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from splitlm.core.markdown import cell
from splitlm.schemas.card import Card

SHIPPED = Path(__file__).resolve().parents[2] / "data_cards" / "cards" / "cluster-00.json"
NASTY = ["a|b", "line\nbreak", "nul\x00byte", "[/bold] *x* `y` <b>", "back\\slash|"]


def _cells(row: str) -> list[str]:
    """Cells of a Markdown table row, splitting on `|` not preceded by a backslash."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


@pytest.mark.parametrize("label", NASTY)
def test_cell_is_one_line_with_no_raw_pipe_or_control(label):
    out = cell(label)
    assert "\n" not in out and "\x00" not in out and len(_cells(f"| {out} |")) == 1


def _card(label: str) -> Card:
    card = Card.model_validate_json(SHIPPED.read_text())
    n = card.windows
    return card.model_copy(update={"domains": {label: n - 1, "plain": 1}, "top_domain": label})


@pytest.mark.parametrize("label", NASTY)
def test_card_tables_keep_their_columns(label):
    from splitlm.curate.cards.markdown import render_card, render_index

    card = _card(label)
    text = render_card(card, 16)
    assert "\x00" not in text
    body = text.split("---\n", 2)[2]  # after the YAML front matter, which YAML quotes on its own
    rows = [line for line in body.splitlines() if line.startswith("|")]
    domain_rows = rows[rows.index("| domain | windows | share |") + 2:]
    assert [len(_cells(r)) for r in domain_rows] == [3, 3]
    assert all(len(_cells(r)) == 2 for r in rows[: rows.index("| domain | windows | share |")])
    index = render_index([card], {"max_min": 1.0, "objective": 0.5, "plain_faiss": {"max_min": 2.0, "objective": 0.6}})
    header, _, row = [line for line in index.splitlines() if line.startswith("|")]
    assert len(_cells(row)) == len(_cells(header)) == 6
