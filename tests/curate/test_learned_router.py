"""The learned router: fitted by the routing stage on training windows only, saved without pickle,
reloaded in a fresh process by `curate route`, deterministic, and blind to shard assignment.

Two small runs of the demo slice with the static embedder (fast on CPU), one per `--router`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from splitlm.core.cache import cache_dir
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.static import provision_static
from splitlm.curate.routing.files import HEAD, load_routing
from splitlm.curate.routing.folds import blocked_folds
from splitlm.curate.routing.stage import RoutingConfig, fit_routing, training_windows
from splitlm.schemas.manifest import StageManifest
from tests.curate.test_contracts import DOMAINS, WORDS, cluster_config, demo_slice

CURATE_BIN = Path(sys.executable).parent / "curate"


def _config(router: str):
    return replace(cluster_config(embed=EmbedConfig(name="static")), routing=RoutingConfig(router=router))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from splitlm.curate.pipeline import run_cluster

    provision_static(cache_dir())
    base = tmp_path_factory.mktemp("learned")
    corpus = demo_slice(base / "demo.jsonl", DOMAINS, WORDS)
    out = {}
    for router in ("centroid", "learned"):
        out[router] = base / router
        run_cluster([corpus], out[router], _config(router))
    return out


def test_the_head_never_changes_shards(runs):
    parts = {r: StageManifest.read(run / "shards").parts for r, run in runs.items()}
    assert parts["centroid"] == parts["learned"] and parts["centroid"]
    assert (runs["learned"] / "routing" / HEAD).exists() and not (runs["centroid"] / "routing" / HEAD).exists()


def test_the_routing_stage_fits_on_training_windows_only(runs):
    from splitlm.curate.shards import read_labels
    from splitlm.curate.window_columns import read_window_columns

    run = runs["learned"]
    counts = StageManifest.read(run / "routing").counts
    ids, labels = training_windows(run, 3)
    val = set()
    for c in range(3):
        import pyarrow.parquet as pq

        val |= set(pq.read_table(run / "shards" / f"cluster-{c:02d}" / "val" / "index.parquet")
                   .column("window_id").to_pylist())
    assert val and val.isdisjoint(ids.tolist())
    assert counts["windows_train"] == len(ids) == counts["windows_used"] + counts["windows_not_sampled"]
    assert len(ids) + len(val) <= len(read_window_columns(run).is_val_N)
    np.testing.assert_array_equal(labels, read_labels(run)[ids])  # the target is the window's shard
    assert counts["prefixes"] == counts["texts_embedded"] + counts["prefixes_repeated"]


def test_a_saved_learned_router_routes_a_held_out_prefix_in_a_fresh_process(runs, tmp_path):
    run = runs["learned"]
    unseen = demo_slice(tmp_path / "unseen.jsonl", {"code": 2, "wiki": 2}, WORDS, skip=DOMAINS["wiki"])
    out = tmp_path / "routed.jsonl"
    done = subprocess.run([str(CURATE_BIN), "route", str(run), str(unseen), "--out", str(out),
                           "--min-confidence", "0.5"], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4
    from splitlm.curate.cluster.router import Router

    router = Router.load(run)
    assert router.kind == "learned"
    texts = [json.loads(line)["text"] for line in unseen.read_text().splitlines()]
    here = router.route(texts)
    for row, c, p, t in zip(rows, here.clusters, here.probability, here.top2):
        assert row["router"] == "learned" and row["cluster"] == c and row["top2"] == t != c
        assert abs(row["probability"] - float(p)) < 1e-5 and 0 < row["probability"] <= 1
        assert ("fallback" in row) == (row["probability"] < 0.5)


def test_the_head_is_deterministic_under_the_seed(runs):
    from splitlm.curate.cluster.router import Router

    run = runs["learned"]
    router = Router.load(run, routing=False)
    rng = np.random.default_rng(0)
    x = {p: _unit(rng.normal(size=(300, router.embedder.dimension))) for p in (8, 32)}
    labels = router.route_vectors(x[32]).clusters  # labels the head can learn
    config = RoutingConfig(router="learned", prefix_lengths=(8, 32))
    a, _ = fit_routing(x, labels, router, config, 32)
    b, _ = fit_routing(x, labels, router, config, 32)
    for name in ("weights_FK", "bias_K", "mean_F", "scale_F"):
        assert getattr(a.head, name).tobytes() == getattr(b.head, name).tobytes(), name
    assert a.balance_K.tobytes() == b.balance_K.tobytes() and a.spec == b.spec
    loaded = load_routing(run / "routing", run / "clusters" / "router.safetensors")
    assert loaded.spec.router == "learned" and loaded.head.weights_FK.dtype == np.float32


def test_cross_validation_folds_never_share_a_window():
    for n in (1, 63, 64, 1000, 5639):
        fold_N = blocked_folds(n, folds=5, block=64, seed=0)
        for f in range(5):
            train, test = np.flatnonzero(fold_N != f), np.flatnonzero(fold_N == f)
            assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == n


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_inspect_measures_both_routers_on_the_same_windows(runs):
    """routing_recall's learned_* columns are the learned router's answers; centroid runs leave them empty."""
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.stage import load_vectors
    from splitlm.curate.inspect.routing import prefix_routing, sample_windows
    from splitlm.curate.shards import read_labels
    from splitlm.curate.window_columns import read_window_columns
    from splitlm.schemas.tokens import TokenArray

    rows = {}
    for kind, run in runs.items():
        router = Router.load(run)
        labels = read_labels(run)
        ids = sample_windows(read_window_columns(run).is_val_N, "all", 10_000, 0)
        stats = prefix_routing(router, TokenArray(run / "windows"), load_vectors(run), labels, ids, (8, 32))
        rows[kind] = stats.rows
        if kind == "learned":  # top-1 is exactly the learned router's answer on the same prefixes
            texts = router.tokenizer.decode_batch(TokenArray(run / "windows")[ids][:, :32])
            chosen = router.route_vectors(router.embedder.encode(texts), 32).clusters
            assert abs(stats.row(32).learned_top1 - float(np.mean(chosen == labels[ids]))) <= 1 / len(ids) + 1e-9
    assert all(r.learned_top1 is None and r.learned_ece is None for r in rows["centroid"])
    for r in rows["learned"]:
        assert 0 <= r.learned_top1 <= r.learned_top3 <= 1 and 0 <= r.learned_ece <= 1
    for r in rows["centroid"] + rows["learned"]:
        assert 0 <= r.centroid_ece <= 1


def test_routing_cv_never_routes_a_window_with_a_fit_that_saw_it(runs, monkeypatch):
    """inspect's routing_cv: training and test ids never overlap; val rows use only held-out validation windows."""
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.stage import load_vectors
    from splitlm.curate.inspect import routing_cv as cv
    from splitlm.curate.shards import read_labels
    from splitlm.schemas.tokens import TokenArray

    run = runs["learned"]
    router, labels = Router.load(run), read_labels(run)
    train_pool, val_pool = cv.split_windows(run, router.k)
    fitted_on, _ = training_windows(run, router.k)  # what the routing stage fitted on
    assert np.array_equal(train_pool, fitted_on) and np.intersect1d(val_pool, fitted_on).size == 0 and len(val_pool)
    plan = cv.plan(train_pool, val_pool, cv_windows=len(train_pool) - 7, val_windows=10_000, seed=3)
    assert np.isin(plan.train_ids, train_pool).all() and np.array_equal(plan.val_ids, val_pool)
    folds = list(plan.folds())
    assert len(folds) == 5
    for _, fit, test in folds:
        assert np.intersect1d(plan.train_ids[fit], plan.train_ids[test]).size == 0
        assert np.intersect1d(plan.train_ids[fit], plan.val_ids).size == 0
    assert np.array_equal(np.sort(np.concatenate([t for _, _, t in folds])), np.arange(len(plan.train_ids)))

    fits = []

    def spy(x, y, *args):  # every fit sees exactly the windows of the other folds, labelled as their shards
        fits.append(y.copy())
        return fit_routing(x, y, *args)

    monkeypatch.setattr(cv, "fit_routing", spy)
    result = cv.routing_cv(router, cv.routing_config(run), TokenArray(run / "windows"), load_vectors(run), labels,
                           plan, (8, 32), {})
    assert [len(y) for y in fits] == [len(fit) for _, fit, _ in folds]
    for y, (_, fit, _) in zip(fits, folds):
        assert np.array_equal(y, labels[plan.train_ids[fit]])
    rows = {(r.router, r.prefix_tokens, r.split): r for r in result.rows}
    assert set(rows) == {(r, p, s) for r in ("centroid", "learned") for p in (8, 32) for s in ("cv", "val")}
    for (name, p, split), r in rows.items():
        assert r.n == (len(plan.train_ids) if split == "cv" else len(val_pool))
        assert 0 <= r.top1_low <= r.top1 <= r.top1_high <= 1 and 0 <= r.ece <= 1
        if split == "cv":  # every training window routed exactly once, by the fold that held it out
            assert (result.chosen[name][p] >= 0).all()
            assert r.top1 == round(float(np.mean(result.chosen[name][p] == labels[plan.train_ids])), 4)
    # the val rows are the run's own routers on the validation windows
    texts = router.tokenizer.decode_batch(TokenArray(run / "windows")[val_pool][:, :32])
    chosen = router.route_vectors(router.embedder.encode(texts), 32).clusters
    assert abs(rows[("learned", 32, "val")].top1 - float(np.mean(chosen == labels[val_pool]))) <= 1 / len(val_pool) + 1e-9


def test_routing_cv_on_a_centroid_run_has_centroid_rows_only(runs):
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.embed.stage import load_vectors
    from splitlm.curate.inspect import routing_cv as cv
    from splitlm.curate.shards import read_labels
    from splitlm.schemas.tokens import TokenArray

    run = runs["centroid"]
    router = Router.load(run)
    plan = cv.plan(*cv.split_windows(run, router.k), cv_windows=10_000, val_windows=10_000, seed=0)
    args = (router, cv.routing_config(run), TokenArray(run / "windows"), load_vectors(run), read_labels(run), plan, (16,))
    first, again = cv.routing_cv(*args, {}), cv.routing_cv(*args, {})
    assert {r.router for r in first.rows} == {"centroid"} and {r.split for r in first.rows} == {"cv", "val"}
    assert first.rows == again.rows  # deterministic
    # reusing the recall measurement's prefix vectors (inspect does) changes nothing
    from splitlm.curate.inspect.routing import prefix_routing, sample_windows
    from splitlm.curate.window_columns import read_window_columns

    ids = sample_windows(read_window_columns(run).is_val_N, "all", 10_000, 0)[::2]  # some windows known, some not
    stats = prefix_routing(router, args[2], args[3], args[4], ids, (8, 16))
    assert cv.routing_cv(*args, stats.embedded, known=stats).rows == first.rows


def test_wilson_interval():
    from splitlm.curate.inspect.routing_cv import wilson

    low, high = wilson(8, 10)
    assert abs(low - 0.4902) < 1e-3 and abs(high - 0.9433) < 1e-3
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    assert all(np.isnan(wilson(0, 0)))


def test_cards_measure_each_router_on_the_same_validation_windows(runs):
    """Per cluster, the learned run's per-router accuracies are what each run's own cards report."""
    from splitlm.curate.cards.build import CardsConfig, _routing_accuracy
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.shards import read_labels
    from splitlm.curate.window_columns import read_window_columns
    from splitlm.schemas.card import Card
    from splitlm.schemas.tokens import TokenArray

    run = runs["learned"]
    router = Router.load(run)
    by_router = _routing_accuracy(router, TokenArray(run / "windows"), read_labels(run), read_window_columns(run).is_val_N,
                                  router.k, CardsConfig().routing_sample)
    assert list(by_router) == ["centroid", "learned"]
    for kind, other in runs.items():  # the shards (so the clusters and windows) are the same in both runs
        cards = [Card.model_validate_json(p.read_text()) for p in sorted((other / "cards").glob("cluster-*.json"))]
        assert [(c.routing_accuracy, c.routing_sample) for c in cards] == by_router[kind]
