"""The shipped `data_cards/` still validate and are exactly what the code renders from their own numbers.

Regenerating them means a full demo run (minutes of embedding), so this checks everything after
the model: schema validity, Markdown re-rendered from the card JSON, every inspect file (PNGs too)
re-rendered from `summary.json`, and counts that must agree across files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from splitlm.schemas.card import Card

ROOT = Path(__file__).resolve().parent.parent / "data_cards"


@pytest.fixture(scope="module")
def cards() -> list[Card]:
    paths = sorted((ROOT / "cards").glob("cluster-*.json"))
    assert paths, f"{ROOT / 'cards'} holds no cards: run `make data-cards`"
    return [Card.model_validate_json(p.read_text()) for p in paths]


@pytest.fixture(scope="module")
def summary() -> dict:
    return json.loads((ROOT / "inspect" / "summary.json").read_text())


def test_cards_validate_against_the_shipped_schema(cards):
    import jsonschema

    schema = json.loads((ROOT / "cards" / "card.schema.json").read_text())
    assert schema == json.loads(json.dumps(Card.model_json_schema()))  # the schema file is the model's
    for card in cards:
        jsonschema.validate(json.loads((ROOT / "cards" / f"{card.name}.json").read_text()), schema)
    assert [c.cluster for c in cards] == list(range(len(cards)))


def test_markdown_cards_are_what_the_code_renders(cards, summary):
    from splitlm.curate.cards.markdown import render_card, render_index

    for card in cards:
        assert (ROOT / "cards" / f"{card.name}.md").read_text() == render_card(card, len(cards)), card.name
    assert (ROOT / "cards" / "index.md").read_text() == render_index(cards, summary["balance"])


def test_inspect_files_are_what_the_code_renders(summary, tmp_path):
    from splitlm.curate.inspect.report import render_files

    render_files(summary, tmp_path)
    rendered = sorted(p.name for p in tmp_path.iterdir())
    assert rendered == sorted(p.name for p in (ROOT / "inspect").iterdir())
    for name in rendered:
        assert (tmp_path / name).read_bytes() == (ROOT / "inspect" / name).read_bytes(), name


def test_counts_agree_across_cards_csvs_and_summary(cards, summary):
    k = summary["k"]
    assert len(cards) == k and sum(c.windows for c in cards) == summary["windows"]
    with open(ROOT / "inspect" / "domains.csv", newline="") as fh:
        domains = list(csv.DictReader(fh))
    assert summary["config"]["label_field"] is None  # the shipped report crosses clusters with the ingest label
    for c, card in enumerate(cards):
        column = {row["label"]: int(row[f"n_{c:02d}"]) for row in domains if int(row[f"n_{c:02d}"])}
        assert column == card.domains, card.name  # cards count the ingest label on their own
        row = summary["clusters"][c]
        assert row["windows"] == card.windows and row["routing_val_sample"] <= card.val_windows
        if row["routing_val_sample"] == card.routing_sample:  # the same validation windows, the same router rule
            assert card.routing_accuracy == row["routing_val"]
    with open(ROOT / "inspect" / "routing_recall.csv", newline="") as fh:
        routing = list(csv.DictReader(fh))
    assert {"prefix_tokens", "r_at_1", "r_at_5", "route_top1", "route_top3"} <= set(routing[0])
    p = [int(r["prefix_tokens"]) for r in routing]
    assert p == sorted(p) and 32 in p
    r1 = [float(r["r_at_1"]) for r in routing]
    assert all(0 <= x <= 1 for x in r1) and r1[-1] > r1[0]  # a longer prefix finds its window more often
    report = (ROOT / "inspect" / "report.md").read_text()
    for card in cards:
        assert f"../cards/{card.name}.md" in report and (ROOT / "cards" / f"{card.name}.md").exists()
