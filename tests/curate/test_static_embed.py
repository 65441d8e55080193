"""The static embedder (model2vec, distilled from our MiniLM): its vectors, its modes, its distillation,
and a whole `curate cluster` run with it, locally and on a real Ray cluster.

The distilled model lives in the real asset cache (`splitlm assets` makes it; the session fixture
makes it too when it is missing, which takes a few minutes once).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splitlm.core.cache import cache_dir
from splitlm.core.errors import AssetError, SchemaError
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.static import (
    RECORD,
    STATIC_MODEL_ID,
    WEIGHTS,
    StaticEmbedder,
    provision_static,
)
from splitlm.schemas.router import EmbedderSpec

pytestmark = pytest.mark.ray  # starts a local Ray cluster (conftest: one at a time)

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "off", "to", "see", "her", "old",
         "friend", "who", "lives", "by", "sea"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def static_folder() -> Path:
    return provision_static(cache_dir())


@pytest.fixture(scope="module")
def mean(static_folder) -> StaticEmbedder:
    return StaticEmbedder(EmbedConfig(name="static"))


@pytest.fixture(scope="module")
def truncate(static_folder) -> StaticEmbedder:
    return StaticEmbedder(EmbedConfig(name="static", mode="truncate"))


def _words(n: int, seed: int) -> str:
    return " ".join(np.random.default_rng(seed).choice(WORDS, n))


def test_rows_are_unit_float32_and_model2vecs_own_encoding(mean, static_folder):
    from model2vec import StaticModel

    texts = ["A short text about ships.", "def f(x):\n    return x + 1", _words(3000, 0), "Ünïcödé çafé naïve"]
    got_ND = mean.encode(texts)
    assert got_ND.dtype == np.float32 and got_ND.shape == (4, 256) == (len(texts), mean.dimension)
    np.testing.assert_allclose(np.linalg.norm(got_ND, axis=1), 1.0, atol=1e-6)
    # model2vec's encode of the same folder (whole texts: the folder's config sets no max_length)
    ref_ND = StaticModel.from_pretrained(str(static_folder)).encode(texts)
    np.testing.assert_allclose(got_ND, ref_ND, atol=2e-6)


def test_mean_reads_the_whole_text_and_truncate_its_head(mean, truncate):
    head, tail = _words(300, 1), _words(300, 2)
    assert all(len(p) == 1 for p in mean.model_pieces(WORDS))  # one word, one piece: 300 words are 300 pieces
    text = head + " " + tail
    assert [len(p) for p in mean.model_pieces([text])] == [600]
    assert [len(p) for p in truncate.model_pieces([text])] == [254]  # max_pieces 256 minus [CLS] and [SEP]
    first = " ".join(text.split()[:254])
    # truncate reads exactly the first 254 pieces: the same bytes as the whole of those 254
    assert truncate.encode([text]).tobytes() == mean.encode([first]).tobytes() == truncate.encode([first]).tobytes()
    assert mean.encode([text]).tobytes() != mean.encode([first]).tobytes()
    short = StaticEmbedder(EmbedConfig(name="static", mode="truncate", max_pieces=16))
    assert short.model_pieces([text]) == mean.model_pieces([" ".join(text.split()[:14])])
    assert short.spec()["mode"] == "truncate" and short.spec()["max_pieces"] == 16


def test_truncate_cuts_the_pieces_minilm_reads(static_folder):
    from types import SimpleNamespace

    from splitlm.curate.embed.load import _minilm_tokenizer, model_pieces

    texts = ["Ships, harbours & the Sea: a naïve café's 3,000 tonnes of cargo!", _words(40, 3), ""]
    for mode in ("truncate", "mean"):
        config = EmbedConfig(mode=mode, max_pieces=16)
        minilm = model_pieces(SimpleNamespace(config=config), texts)  # MiniLM's pieces, without loading MiniLM
        static = StaticEmbedder(EmbedConfig(name="static", mode=mode, max_pieces=16))
        as_text = [[_minilm_tokenizer().id_to_token(i) for i in p] for p in minilm]
        assert as_text[:2] == [[static._tokenizer.id_to_token(i) for i in p] for p in static.model_pieces(texts)[:2]]
        assert [len(p) for p in minilm] == ([14, 14, 0] if mode == "truncate" else [len(as_text[0]), 40, 0])


def test_vectors_do_not_depend_on_the_batch(mean, truncate):
    texts = [_words(2000, s) for s in range(40)] + [_words(20_000, 99), "", "   ", "a b", "a b a"]
    for embedder in (mean, truncate):
        together = embedder.encode(texts)
        alone = np.concatenate([embedder.encode([t]) for t in texts])
        backwards = embedder.encode(texts[::-1])[::-1]
        assert together.tobytes() == alone.tobytes() == backwards.tobytes()
        assert np.isfinite(together).all()


def test_a_text_without_pieces_reads_as_pad(mean):
    empty = mean.encode(["", " \n\t "])
    pad = mean.table_VD[mean.model_pieces([""])[0]].sum(0)
    np.testing.assert_array_equal(empty[0], empty[1])
    np.testing.assert_allclose(empty[0], pad / np.linalg.norm(pad), atol=1e-7)
    assert mean.model_pieces(["", "x"])[0] == [mean._pad]


def test_spec_records_the_distilled_weights(mean, static_folder):
    spec = mean.spec()
    assert set(spec) == set(EmbedderSpec.model_fields)
    EmbedderSpec(**spec)
    record = json.loads((static_folder / RECORD).read_text())
    assert spec["model_id"] == STATIC_MODEL_ID and spec["mode"] == "mean" and spec["precision"] == "fp32"
    assert spec["weights_sha256"] == _sha(static_folder / WEIGHTS) == record["weights_sha256"]
    assert spec["dimension"] == record["dimension"] == 256 and spec["normalized"] and spec["pooling"] == "mean"


def test_check_only_names_the_missing_folder(tmp_path):
    with pytest.raises(AssetError, match=rf"{tmp_path}.*splitlm assets"):
        provision_static(tmp_path, check_only=True)
    assert not any(tmp_path.iterdir())  # checking builds nothing


@pytest.mark.parametrize("change, problem", [
    (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:-4] + b"\0\0\0\0"), "corrupt"),
    (lambda f: _edit_record(f, recipe={"pca_dims": 128}), "another recipe"),
    (lambda f: _edit_record(f, source_sha256="0" * 64), "other MiniLM weights"),
    (lambda f: (f / "tokenizer.json").unlink(), "incomplete"),
])
def test_a_stale_or_broken_copy_is_not_used(static_folder, tmp_path, change, problem):
    copy = tmp_path / static_folder.relative_to(static_folder.parents[1])
    shutil.copytree(static_folder, copy)
    assert provision_static(tmp_path, check_only=True) == copy
    change(copy)
    with pytest.raises(AssetError, match=rf"{problem}.*{copy}.*splitlm assets"):
        provision_static(tmp_path, check_only=True)
    with pytest.raises(AssetError, match=problem):
        StaticEmbedder(EmbedConfig(name="static"), root=tmp_path)


def _edit_record(folder: Path, **fields) -> None:
    record = json.loads((folder / RECORD).read_text())
    (folder / RECORD).write_text(json.dumps(record | fields))


def test_embedder_for_spec_refuses_other_weights(mean):
    from splitlm.curate.embed.load import embedder_for_spec, load_embedder

    assert isinstance(load_embedder(EmbedConfig(name="static")), StaticEmbedder)
    spec = mean.spec()
    again = embedder_for_spec(EmbedderSpec(**spec))
    assert isinstance(again, StaticEmbedder) and again.spec() == spec
    with pytest.raises(SchemaError, match=r"static weights .*router\.json"):
        embedder_for_spec(dict(spec, weights_sha256="0" * 64))
    with pytest.raises(SchemaError, match="not one this splitlm has"):
        embedder_for_spec(dict(spec, model_id="someone/else"))


DISTILL = """
import sys
from pathlib import Path
from splitlm.curate.embed.static import distill
distill(Path(sys.argv[1]), token_remove_pattern=r"(?![kj]|\\[(?!unused))")  # 587 pieces: k*, j*, specials
"""


@pytest.mark.slow  # two fresh processes each import torch and load MiniLM: ~30 s on 2 busy cores
def test_two_fresh_distillations_write_the_same_bytes(tmp_path):
    # The whole vocabulary takes minutes, so the same code runs on a vocabulary cut to 587 pieces
    # (enough for the 256-d PCA); the two processes differ in their thread settings too (the PCA's
    # BLAS rounds differently on 1 and 2 threads unless `distill` pins it).
    outs = [tmp_path / "a", tmp_path / "b"]
    envs = [{}, {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}]
    procs = [subprocess.Popen([sys.executable, "-c", DISTILL, str(out)], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for out, env in zip(outs, envs)]
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    assert {WEIGHTS, RECORD, "tokenizer.json", "config.json"} <= set(files)
    assert {f: _sha(outs[0] / f) for f in files} == {f: _sha(outs[1] / f) for f in files}
    record = json.loads((outs[0] / RECORD).read_text())
    assert record["weights_sha256"] == _sha(outs[0] / WEIGHTS) and record["dimension"] == 256


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from tests.curate.test_contracts import DOMAINS, WORDS, demo_slice

    return demo_slice(tmp_path_factory.mktemp("corpus") / "demo.jsonl", DOMAINS, WORDS)


@pytest.fixture(scope="module")
def run(corpus, static_folder, tmp_path_factory) -> Path:
    from splitlm.curate.pipeline import run_cluster
    from tests.curate.test_contracts import cluster_config

    out = tmp_path_factory.mktemp("static") / "run"
    run_cluster([corpus], out, cluster_config(embed=EmbedConfig(name="static")))
    return out


@pytest.mark.slow
def test_curate_cluster_with_static_follows_the_contracts(run, static_folder):
    from splitlm.curate.cluster.router import Router
    from splitlm.schemas.tokens import TokenArray
    from tests.curate.test_contracts import assignments

    summary = json.loads((run / "manifest.json").read_text())
    sizes = summary["clusters"]["sizes"]
    assert summary["k"] == 3 and summary["embed_mode"] == "mean"
    assert sum(sizes) == summary["windows"] and max(sizes) / min(sizes) <= 1.10, sizes
    weights = _sha(static_folder / WEIGHTS)
    recorded = [json.loads((run / "embeddings" / "manifest.json").read_text())["counts"]["embedder"],
                json.loads((run / "clusters" / "router.json").read_text())["embedder"]]
    recorded += [json.loads((run / "cards" / f"cluster-{c:02d}.json").read_text())["provenance"]["embedder"]
                 for c in range(3)]
    for spec in recorded:
        assert (spec["model_id"], spec["weights_sha256"], spec["mode"], spec["dimension"]) == \
            (STATIC_MODEL_ID, weights, "mean", 256), spec
    assert STATIC_MODEL_ID in (run / "cards" / "cluster-00.md").read_text()
    vectors = np.load(run / "embeddings" / "vectors.npy")
    assert vectors.shape == (summary["windows"], 256)

    # The router embeds a window's whole text into the very vector it was assigned by: its shard.
    router = Router.load(run)
    assert isinstance(router.embedder, StaticEmbedder)
    texts = router.tokenizer.decode_batch(TokenArray(run / "windows").tokens)
    assert router.embedder.encode(texts).tobytes() == vectors.tobytes()
    np.testing.assert_array_equal(router.route_texts(texts).clusters, assignments(run))


@pytest.mark.slow
def test_static_rerun_writes_the_same_bytes(run, corpus, tmp_path):
    from splitlm.curate.pipeline import run_cluster
    from splitlm.schemas.layout import STAGES
    from splitlm.schemas.manifest import StageManifest
    from tests.curate.test_contracts import cluster_config

    again = tmp_path / "run"
    run_cluster([corpus], again, cluster_config(embed=EmbedConfig(name="static")))
    for stage in STAGES:
        first, second = StageManifest.read(run / stage), StageManifest.read(again / stage)
        assert first.parts == second.parts and first.parts, stage
    for name in ("embeddings/vectors.npy", "clusters/router.safetensors", "clusters/router.json"):
        assert (run / name).read_bytes() == (again / name).read_bytes(), name


@pytest.mark.slow
def test_inspect_routes_prefixes_with_the_static_embedder(run):
    from splitlm.curate.inspect.stage import InspectConfig, run_inspect

    summary = run_inspect(run, InspectConfig(split="all", sample=24, prefix_lengths=(4, 64)))
    assert summary["embedder"]["model_id"] == STATIC_MODEL_ID
    # 64 tokens is the whole window: its pieces are the stored vector's input, reused, not embedded again
    assert summary["routing"]["vectors_reused"] == summary["sample"]["windows"] == 24
    row = next(r for r in summary["routing"]["rows"] if r["prefix_tokens"] == 64)
    assert row["route_top1"] == 1.0 and row["r_at_1"] == 1.0


@pytest.mark.slow  # a real Ray cluster (~20-60 s to start on 2 shared cores); the static embedder is instant
def test_static_embeds_in_ray_actors_the_bytes_of_the_local_engine(run, tmp_path):
    import ray

    from splitlm.core.ray_session import RAY_ENV
    from splitlm.curate.embed.ray import embed_parts
    from splitlm.schemas.manifest import StageManifest
    from splitlm.schemas.tokens import TokenArray

    windows = run / "windows"
    n = len(TokenArray(windows))
    parts = [(i, lo, min(lo + 16, n)) for i, lo in enumerate(range(0, n, 16))]
    paths = [tmp_path / f"part-{i:05d}.npy" for i, _, _ in parts]
    done: list[int] = []
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RAY_ENV)
    try:
        spec, pids = embed_parts(parts, paths, windows, StageManifest.read(windows).config["tokenizer"],
                                 EmbedConfig(name="static"), 2, done.append)
    finally:
        ray.shutdown()
    assert sorted(done) == [i for i, _, _ in parts] and len(parts) > 2
    assert spec == StageManifest.read(run / "embeddings").counts["embedder"] and spec["model_id"] == STATIC_MODEL_ID
    assert pids and os.getpid() not in pids  # the static embedder ran in Ray actors
    got = np.concatenate([np.load(p) for p in paths])
    assert got.tobytes() == np.load(run / "embeddings" / "vectors.npy").tobytes()
