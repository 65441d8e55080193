"""Calibrated confidence: per-length temperatures, the route's probability and runner-up, and
`curate route --min-confidence`."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from splitlm.core.cache import cache_dir
from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.router import Router
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.static import provision_static
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.route import route_documents
from splitlm.curate.routing.calibration import expected_calibration_error, probabilities
from splitlm.curate.routing.files import Routing
from splitlm.curate.routing.heads import centroid_scores
from splitlm.curate.routing.stage import RoutingConfig, fit_routing
from splitlm.schemas.routing import RoutingSpec, temperature_at
from tests.curate.test_contracts import DOMAINS, WORDS, cluster_config, demo_slice
from tests.test_schemas import _router_spec


def _router(k: int = 6, d: int = 16, seed: int = 0) -> Router:
    rng = np.random.default_rng(seed)
    c_KD = rng.normal(size=(k, d))
    c_KD /= np.linalg.norm(c_KD, axis=1, keepdims=True)
    return Router(c_KD.astype(np.float32), rng.normal(scale=0.05, size=k).astype(np.float32), _router_spec(k, d))


def _prefixes(router: Router, n: int, t_true: float, noise: float, seed: int):
    """Unit vectors near random centroids, labelled by sampling the centroid rule's softmax at `t_true`."""
    rng = np.random.default_rng(seed)
    x_ND = router.centroids_KD[rng.integers(0, router.k, n)] + noise * rng.normal(size=(n, router.centroids_KD.shape[1]))
    x_ND = (x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True)).astype(np.float32)
    p_NK = probabilities(centroid_scores(x_ND, router.centroids_KD, router.biases_K), t_true)
    return x_ND, (p_NK.cumsum(1) > rng.random((n, 1))).argmax(1)


def test_temperatures_are_fitted_per_length_and_calibrate_the_route():
    router = _router()
    truth = {8: 0.4, 32: 0.1}  # short prefixes are vaguer: their labels follow a hotter softmax
    x, y = {}, {}
    for i, (p, t) in enumerate(truth.items()):
        x[p], y[p] = _prefixes(router, 6000, t, 0.6, seed=i)
    # each length on its own labels (drawn at its own temperature)
    for p, t in truth.items():
        routing, _ = fit_routing({p: x[p]}, y[p], router, RoutingConfig(prefix_lengths=(p,)), p)
        assert abs(routing.spec.centroid_temperatures[0] / t - 1) < 0.15
    spec = RoutingSpec(router="centroid", clusters_router_sha256="x", prefix_lengths=[8, 32],
                       centroid_temperatures=[0.4, 0.1], windows=1, seed=0)
    calibrated = Router(router.centroids_KD, router.biases_K, router.spec, routing=Routing(spec))
    for i, p in enumerate(truth):
        fresh_x, fresh_y = _prefixes(router, 6000, truth[p], 0.6, seed=10 + i)
        got = calibrated.route_vectors(fresh_x, prefix_tokens=p)
        assert got.router == "centroid" and got.probability.dtype == np.float32
        np.testing.assert_array_equal(got.clusters, router.assign_vectors(fresh_x).clusters)  # T never reroutes
        assert (got.top2 != got.clusters).all()
        assert expected_calibration_error(got.probability, got.clusters == fresh_y) < 0.03
        wrong_t = router.route_vectors(fresh_x, prefix_tokens=p)  # no routing stage: T = 1
        assert expected_calibration_error(wrong_t.probability, wrong_t.clusters == fresh_y) > 0.1


def test_the_nearest_fitted_length_in_log_p_gives_the_temperature():
    lengths, temps = [8, 16, 32, 64, 128], [5.0, 4.0, 3.0, 2.0, 1.0]
    assert [temperature_at(lengths, temps, p) for p in (1, 8, 11, 12, 32, 45, 46, 1000)] == \
        [5.0, 5.0, 5.0, 4.0, 3.0, 3.0, 2.0, 1.0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    from splitlm.curate.pipeline import run_cluster

    provision_static(cache_dir())
    base = tmp_path_factory.mktemp("confidence")
    corpus = demo_slice(base / "demo.jsonl", DOMAINS, WORDS)
    config = replace(cluster_config(embed=EmbedConfig(name="static")), routing=RoutingConfig(prefix_lengths=(8, 32)))
    run_cluster([corpus], base / "run", config)
    return base / "run"


def test_min_confidence_marks_the_rows_below_it(run, tmp_path):
    corpus = demo_slice(tmp_path / "unseen.jsonl", {"code": 3, "wiki": 3, "tiny": 3}, WORDS, skip=8)
    plain = tmp_path / "plain.jsonl"
    route_documents(run, [corpus], plain, IngestConfig())
    probs = sorted(json.loads(line)["probability"] for line in plain.read_text().splitlines())
    cut = (probs[3] + probs[4]) / 2 if probs[3] < probs[4] else probs[4] + 1e-6
    out = tmp_path / "routed.jsonl"
    counts = route_documents(run, [corpus], out, IngestConfig(), min_confidence=cut)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert counts["fallback"] == sum(p < cut for p in probs) and 0 < counts["fallback"] < len(rows)
    for row in rows:
        assert {"cluster", "distance", "probability", "top2", "router"} <= set(row) and row["router"] == "centroid"
        assert row.get("fallback") == ("mixture" if row["probability"] < cut else None)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="--min-confidence"):
            route_documents(run, [corpus], tmp_path / "x.jsonl", IngestConfig(), min_confidence=bad)


def test_a_run_without_a_routing_stage_refuses_min_confidence(run, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "routing")
    assert not Router.load(copy).calibrated
    corpus = demo_slice(tmp_path / "unseen.jsonl", {"code": 1}, WORDS, skip=8)
    route_documents(copy, [corpus], tmp_path / "ok.jsonl", IngestConfig())  # still routes, T = 1
    with pytest.raises(ConfigError, match="--min-confidence.*no routing stage"):
        route_documents(copy, [corpus], tmp_path / "x.jsonl", IngestConfig(), min_confidence=0.5)
