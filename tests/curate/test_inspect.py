"""`curate inspect` on a small real 20 Newsgroups run: structure, not fixed numbers."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

# Groups whose first posts are short, so each gives ~25-40 windows and balance does not force a split.
GROUPS = ("comp.graphics", "comp.sys.mac.hardware", "rec.autos", "sci.med", "talk.politics.misc")
K = 4
PREFIXES = (2, 8, 32, 256)  # 256 tokens = the whole window at --seq-len 255
PER_GROUP = 20  # ~150 windows of 256 tokens: inspect samples them all


def curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splitlm.cli.curate", *args], capture_output=True, text=True)


def per_group_sample(news_path: Path, out: Path, per_group: int) -> Path:
    """The first `per_group` posts of each group (the file is ordered by group)."""
    kept: Counter[str] = Counter()
    with gzip.open(news_path, "rt") as src, open(out, "w") as dst:
        for line in src:
            group = json.loads(line)["meta"]["newsgroup"]
            if group in GROUPS and kept[group] < per_group:
                dst.write(line)
                kept[group] += 1
    assert set(kept) == set(GROUPS)
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, news_path):
    return per_group_sample(news_path, tmp_path_factory.mktemp("c") / "news.jsonl", PER_GROUP)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("r") / "run"
    proc = curate("cluster", str(corpus), "--out", str(out), "--domain-field", "meta.newsgroup", "--seq-len", "255",
                  "--k", str(K), "--val-fraction", "0.2")
    assert proc.returncode == 0, proc.stderr
    shutil.copytree(out / "cards", out.parent / "cards-before")  # as `curate cluster` left them
    proc = curate("inspect", str(out), "--split", "all", "--prefix-lengths", ",".join(map(str, PREFIXES)))
    assert proc.returncode == 0, proc.stderr
    assert "prefix routing" in proc.stdout and "report.md" in proc.stdout
    return out


@pytest.mark.slow
def test_report_files_and_routing_rise_with_prefix_length(run):
    folder = run / "inspect"
    for name in ("domains.csv", "domains.png", "routing_recall.csv", "routing_recall.png", "similarity.csv",
                 "similarity.png", "pairs.csv", "clusters.csv", "summary.json", "report.md", "manifest.json"):
        assert (folder / name).stat().st_size > 0, name
    rows = read_csv(folder / "routing_recall.csv")
    assert {"prefix_tokens", "r_at_1", "r_at_5", "route_top1", "route_top3"} <= set(rows[0])
    # issue 11's columns: a centroid run has no learned router, and its calibration error is a share
    assert all(r["learned_top1"] == r["learned_top3"] == r["learned_ece"] == "" for r in rows)
    assert all(0 <= float(r["centroid_ece"]) <= 1 for r in rows)
    assert [int(r["prefix_tokens"]) for r in rows] == list(PREFIXES)
    windows = json.loads((run / "manifest.json").read_text())["windows"]
    assert all(int(r["windows"]) == windows for r in rows)  # --split all, default --sample 10,000: every window
    col = {name: np.array([float(r[name]) for r in rows]) for name in ("r_at_1", "r_at_5", "route_top1", "route_top3")}
    assert np.all(col["r_at_5"] >= col["r_at_1"]) and np.all(col["route_top3"] >= col["route_top1"])
    for name in ("r_at_1", "route_top1"):  # rises with P; sampling noise allows a small dip between neighbours
        assert np.all(np.diff(col[name]) > -0.05), (name, col[name])
        assert col[name][-1] > col[name][0] + 0.3, (name, col[name])
    assert col["r_at_1"][PREFIXES.index(256)] > col["r_at_1"][PREFIXES.index(8)]
    assert col["route_top1"][PREFIXES.index(32)] > 1.5 / K  # well above chance
    report = (folder / "report.md").read_text()
    for needle in ("![domains](domains.png)", "![routing](routing_recall.png)", "![similarity](similarity.png)",
                   "truncate", "| 32 |"):
        assert needle in report


@pytest.mark.slow
def test_routing_cv_covers_the_training_and_validation_windows(run):
    """routing_cv.csv: CV over the shards' training windows, val over their validation windows; with --split all the
    centroid rule's pooled answers are routing_recall's (its top-1 does not depend on the cross-validated temperatures)."""
    from splitlm.curate.inspect.routing_cv import split_windows

    folder = run / "inspect"
    assert (folder / "routing_cv.png").stat().st_size > 0
    assert "![routing cv](routing_cv.png)" in (folder / "report.md").read_text()
    rows = read_csv(folder / "routing_cv.csv")
    train, val = split_windows(run, K)
    assert {r["router"] for r in rows} == {"centroid"}  # a centroid run
    assert [(int(r["prefix_tokens"]), r["split"]) for r in rows] == [(p, s) for s in ("cv", "val") for p in PREFIXES]
    for r in rows:
        assert int(r["n"]) == (min(len(train), 4_000) if r["split"] == "cv" else len(val))
        assert 0 <= float(r["top1_low"]) <= float(r["top1"]) <= float(r["top1_high"]) <= 1
        assert 0 <= float(r["ece"]) <= 1
    windows = json.loads((run / "manifest.json").read_text())["windows"]
    outside = (windows - len(train) - len(val)) / windows  # windows the shards dropped
    recall = {int(r["prefix_tokens"]): float(r["route_top1"]) for r in read_csv(folder / "routing_recall.csv")}
    by = {(int(r["prefix_tokens"]), r["split"]): r for r in rows}
    for p in PREFIXES:
        cv, held = by[(p, "cv")], by[(p, "val")]
        pooled = (int(cv["n"]) * float(cv["top1"]) + int(held["n"]) * float(held["top1"])) / (len(train) + len(val))
        assert abs(pooled - recall[p]) <= outside + 2e-3, (p, pooled, recall[p])


@pytest.mark.slow
def test_comp_groups_concentrate_and_counts_match_the_cards(run):
    from splitlm.schemas.card import Card

    rows = {r["label"]: r for r in read_csv(run / "inspect" / "domains.csv")}
    assert set(rows) == set(GROUPS)
    for group in ("comp.graphics", "comp.sys.mac.hardware"):
        assert float(rows[group]["top_share"]) > 2 / K, rows[group]  # chance would be 1/K
        assert float(rows[group]["effective_clusters"]) < K
    cards = [Card.model_validate_json((run / "cards" / f"cluster-{c:02d}.json").read_text()) for c in range(K)]
    for c, card in enumerate(cards):  # cards.py counts from the window table on its own
        assert {g: int(r[f"n_{c:02d}"]) for g, r in rows.items() if int(r[f"n_{c:02d}"])} == card.domains
    assert sum(int(r["windows"]) for r in rows.values()) == json.loads((run / "manifest.json").read_text())["windows"]
    purity = {r["cluster"]: float(r["purity"]) for r in read_csv(run / "inspect" / "clusters.csv")}
    assert purity == {c.name: pytest.approx(max(c.domains.values()) / c.windows, abs=1e-4) for c in cards}


@pytest.mark.slow
def test_label_field_rereads_the_corpus(run, corpus, monkeypatch):
    """meta.top (comp, rec, ...) is not in the run: it is re-read and must sum up the newsgroup counts."""
    import pyarrow.parquet as pq

    from splitlm.curate.inspect.domains import domain_stats

    monkeypatch.chdir(corpus.parent)  # the corpus path recorded at ingest is absolute here anyway
    labels = pq.read_table(run / "clusters" / "assignments-00000.parquet").column("cluster").to_numpy()
    top = domain_stats(run, labels, K, "meta.top")
    groups = domain_stats(run, labels, K, None)
    assert top.field == "meta.top" and set(top.labels) == {g.split(".")[0] for g in GROUPS}
    for lab, counts_K in zip(top.labels, top.counts_LK):
        members = [i for i, g in enumerate(groups.labels) if g.split(".")[0] == lab]
        np.testing.assert_array_equal(counts_K, groups.counts_LK[members].sum(0))
    source = domain_stats(run, labels, K, "source")
    assert source.labels == [str(corpus)] and source.counts_LK.sum() == len(labels)


@pytest.mark.slow
def test_route_top1_is_the_routers_own_answer(run):
    import pyarrow.parquet as pq

    from splitlm.curate.cluster.router import Router
    from splitlm.curate.inspect.routing import sample_windows
    from splitlm.curate.window_columns import read_window_columns
    from splitlm.schemas.tokens import TokenArray

    summary = json.loads((run / "inspect" / "summary.json").read_text())
    ids = sample_windows(read_window_columns(run).is_val_N, "all", 10_000, 0)
    assert len(ids) == summary["sample"]["windows"]
    router = Router.load(run)
    tokens = TokenArray(run / "windows").tokens
    own = pq.read_table(run / "clusters" / "assignments-00000.parquet").column("cluster").to_numpy()[ids]
    routed = router.route_tokens(tokens[ids].tolist(), prefix_tokens=32).clusters
    row = next(r for r in summary["routing"]["rows"] if r["prefix_tokens"] == 32)
    # bf16 results move in the last bits with batch composition: allow one flipped near-tie
    assert abs(float(np.mean(routed == own)) - row["route_top1"]) <= 1 / len(ids) + 1e-9


@pytest.mark.slow
def test_reused_vectors_are_what_embedding_the_prefix_gives(run):
    """A prefix feeding MiniLM the stored vector's exact word pieces may reuse that vector."""
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.stage import load_vectors
    from splitlm.curate.inspect.routing import _same_model_input
    from splitlm.schemas.tokens import TokenArray

    router = Router.load(run)
    rows = np.asarray(TokenArray(run / "windows").tokens[:24])
    texts = {p: router.tokenizer.decode_batch(rows[:, :p]) for p in (8, 256)}
    same = _same_model_input(router, rows, texts)
    assert not same[8].any() and same[256].all()  # 256 tokens: the whole window here
    fresh = router.embedder.encode([t for t, s in zip(texts[256], same[256]) if s])
    stored = np.asarray(load_vectors(run)[:24])[same[256]]
    assert np.einsum("nd,nd->n", fresh, stored).min() > 0.999
    summary = json.loads((run / "inspect" / "summary.json").read_text())
    assert summary["routing"]["vectors_reused"] == summary["sample"]["windows"]  # the P = 256 row


def test_the_routing_stages_prefix_embeddings_are_read_back_not_embedded_again(run):
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.stage import load_vectors
    from splitlm.curate.inspect.routing import prefix_routing
    from splitlm.curate.routing.files import stored_prefix_texts
    from splitlm.curate.shards import read_labels
    from splitlm.schemas.tokens import TokenArray

    router = Router.load(run)
    tokens = TokenArray(run / "windows").tokens
    known = stored_prefix_texts(run / "routing", router.tokenizer, tokens)
    summary = json.loads((run / "inspect" / "summary.json").read_text())
    assert len(known) > 0 and summary["routing"]["texts_from_routing"] > 0
    some = sorted(known)[:16]  # each stored vector is the text's embedding
    assert np.einsum("nd,nd->n", router.embedder.encode(some), np.stack([known[t] for t in some])).min() > 0.9999
    ids = np.arange(len(tokens))
    args = (router, tokens, load_vectors(run), read_labels(run), ids, (8, 32))
    fresh, reused = prefix_routing(*args), prefix_routing(*args, known=known)
    assert reused.texts_from_routing > 0 and fresh.texts_from_routing == 0
    assert fresh.texts_embedded == reused.texts_embedded + reused.texts_from_routing
    for a, b in zip(fresh.rows, reused.rows):
        assert a.route_top1 == pytest.approx(b.route_top1, abs=1 / len(ids)) and a.r_at_5 == pytest.approx(b.r_at_5, abs=1 / len(ids))


@pytest.mark.slow
def test_similarity_and_app_f_pairs(run):
    rows = read_csv(run / "inspect" / "similarity.csv")
    cos = np.array([[float(v) for k, v in r.items() if k != "cluster"] for r in rows])
    assert cos.shape == (K, K) and np.allclose(cos, cos.T, atol=1e-4) and np.allclose(np.diag(cos), 1)
    pairs = read_csv(run / "inspect" / "pairs.csv")
    assert [p["similarity"] for p in pairs] == ["0%", "50%", "100%"]
    partner = [int(p["partner"]) for p in pairs]
    others = np.array([cos[0, j] for j in range(1, K)])
    assert cos[0, partner[0]] == others.min() and cos[0, partner[2]] == others.max()
    assert cos[0, partner[0]] <= cos[0, partner[1]] <= cos[0, partner[2]]


@pytest.mark.slow
def test_inspect_leaves_the_cards_alone_and_agrees_with_them(run):
    from splitlm.core.hashing import sha256_file
    from splitlm.schemas.card import Card

    summary = json.loads((run / "inspect" / "summary.json").read_text())
    manifest = json.loads((run / "cards" / "manifest.json").read_text())
    for row in summary["clusters"]:
        before = (run.parent / "cards-before" / f"{row['name']}.json").read_bytes()
        assert (run / "cards" / f"{row['name']}.json").read_bytes() == before  # inspect writes only inspect/
        card = Card.model_validate_json(before)
        # inspect sampled every window here, so it saw every validation window of the cluster
        assert row["routing_val_sample"] == card.val_windows >= card.routing_sample
        if card.routing_sample == card.val_windows:  # the same windows, the same router rule
            assert card.routing_accuracy == row["routing_val"]
    for name, digest in manifest["parts"].items():  # the stage manifest still describes its folder
        assert sha256_file(run / "cards" / name) == digest, name


@pytest.mark.slow
def test_same_seed_same_bytes_and_data_card_copy(run, tmp_path):
    from splitlm.curate.inspect.stage import InspectConfig, run_inspect, write_data_cards

    again = tmp_path / "run"
    shutil.copytree(run, again, ignore=shutil.ignore_patterns("inspect"))
    config = InspectConfig(split="all", sample=60, prefix_lengths=(8,))  # small: only determinism is at stake
    first = run_inspect(again, config)
    shutil.copytree(again / "inspect", tmp_path / "first")
    assert run_inspect(again, config)["routing"] == first["routing"]
    for path in sorted((tmp_path / "first").iterdir()):
        if path.name != "manifest.json":
            assert (again / "inspect" / path.name).read_bytes() == path.read_bytes(), path.name
    dest = tmp_path / "cards"
    dest.mkdir()
    (dest / "README.md").write_text("kept\n")
    written = write_data_cards(again, dest)
    assert (dest / "README.md").read_text() == "kept\n"
    assert {p.name for p in written} >= {"report.md", "routing_recall.png", "cluster-00.json", "index.md"}
    assert not any(p.name == "manifest.json" for p in written)


def test_user_errors_are_one_line(tmp_path):
    proc = curate("inspect", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "curate cluster" in proc.stderr
    proc = curate("inspect", str(tmp_path), "--prefix-lengths", "8,x")
    assert proc.returncode == 1 and "--prefix-lengths" in proc.stderr
    proc = curate("inspect", str(tmp_path), "--split", "test")
    assert proc.returncode == 1 and "--split" in proc.stderr
