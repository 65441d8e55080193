"""Data contracts: every table schema round-trips through the part writer; a wrong schema is an error."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.parts import PartWriter, read_table
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tables import ASSIGNMENTS, DOCUMENTS, DUPLICATES, QUARANTINE, SHARD_INDEX, WINDOWS

ROWS = {
    "documents": (DOCUMENTS, {"doc_id": "a", "text": "t", "domain": None, "source": "f.jsonl", "line": 3}),
    "quarantine": (QUARANTINE, {"source": "f.jsonl", "line": 2, "reason": "empty_text", "detail": "x"}),
    "duplicates": (DUPLICATES, {"doc_id": "b", "duplicate_of": "a", "kind": "near", "domain": "d",
                                "source": "f.jsonl", "line": 4}),
    "windows": (WINDOWS, {"window_id": 0, "split": "train", "domain": "d",
                          "domain_mix": [{"label": "d", "tokens": 9}],
                          "pieces": [{"doc_id": "a", "source": "f", "offset": 0, "token_start": 0, "token_end": 9,
                                      "char_start": 0, "char_end": 30}]}),
    "assignments": (ASSIGNMENTS, {"window_id": 0, "cluster": 3, "distance": 0.5}),
    "shard_index": (SHARD_INDEX, {"window_id": 7, "doc_ids": ["a", "b"], "domain": None}),
}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_tables_round_trip(tmp_path, name):
    schema, row = ROWS[name]
    writer = PartWriter(tmp_path, name, schema, rows_per_group=2)
    for _ in range(5):
        writer.write(row)
    writer.close()
    table = read_table(tmp_path, name, schema)
    assert table.schema.equals(schema, check_metadata=False) and table.to_pylist() == [row] * 5


def test_wrong_schema_is_a_schema_error(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"doc_id": [1]}), tmp_path / "part-00000.parquet")
    with pytest.raises(SchemaError, match="part-00000.parquet"):
        read_table(tmp_path, "part", DOCUMENTS)


def test_empty_table_keeps_its_schema(tmp_path):
    PartWriter(tmp_path, "quarantine", QUARANTINE).close()
    assert read_table(tmp_path, "quarantine", QUARANTINE).num_rows == 0


def test_manifest_round_trip_and_corruption(tmp_path):
    manifest = StageManifest(stage="windows", config={"seq_len": 2048}, config_hash="h", input_fingerprint="f",
                             counts={"windows": 3}, parts={"tokens.bin": "abc"})
    path = tmp_path / "manifest.json"
    path.write_text(manifest.to_json())
    assert StageManifest.read(path) == manifest
    path.write_text(json.dumps({"stage": "windows"}))
    with pytest.raises(SchemaError, match="not a valid stage manifest"):
        StageManifest.read(path)


def test_cluster_names_widen_from_k_101():
    from splitlm.schemas.layout import RunLayout, TrainLayout, cluster_name

    assert [cluster_name(c, 100) for c in (0, 99)] == ["cluster-00", "cluster-99"]
    assert [cluster_name(c, 101) for c in (0, 100)] == ["cluster-000", "cluster-100"]
    assert RunLayout("r").shard(7, 101, "val").as_posix() == "r/shards/cluster-007/val"
    assert TrainLayout("t").branch(2048, 7, 101).as_posix() == "t/branches/split-000000002048/cluster-007"


def _router_spec(k: int = 3, dim: int = 4):
    from splitlm.schemas.router import EmbedderSpec, RouterSpec

    embedder = EmbedderSpec(model_id="m", weights_sha256="0" * 64, mode="truncate", precision="fp32",
                            max_pieces=256, dimension=dim, pooling="mean", normalized=True)
    return RouterSpec(k=k, embedder=embedder, tokenizer="gpt2", tokenizer_sha256="1" * 64, prefix_tokens=16,
                      corpus_fingerprint="2" * 64)


def test_router_spec_round_trips_and_bad_specs_name_the_file(tmp_path):
    import json

    from splitlm.schemas.router import RouterSpec

    path = tmp_path / "router.json"
    path.write_text(_router_spec().to_json())
    assert RouterSpec.read(path) == _router_spec()
    raw = json.loads(path.read_text())
    del raw["embedder"]
    path.write_text(json.dumps(raw))
    with pytest.raises(SchemaError, match="router.json"):
        RouterSpec.read(path)
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="router.json"):
        RouterSpec.read(path)


def test_router_refuses_tensors_that_do_not_match_its_spec(tmp_path):
    import numpy as np

    from splitlm.curate.cluster.router import Router

    folder = tmp_path / "clusters"
    folder.mkdir()
    Router(np.eye(3, 4, dtype=np.float32), np.zeros(3, np.float32), _router_spec(k=3)).save(folder)
    assert Router.load(tmp_path).prefix_tokens == 16
    # a K=1 router's tensors beside a spec that says k=3
    Router(np.eye(1, 4, dtype=np.float32), np.zeros(1, np.float32), _router_spec(k=3)).save(folder)
    with pytest.raises(SchemaError, match="router.safetensors.*k=3"):
        Router.load(tmp_path)
    (folder / "router.safetensors").write_bytes(b"\x00" * 10)  # truncated
    with pytest.raises(SchemaError, match="router.safetensors"):
        Router.load(tmp_path)


def test_run_summary_checks_its_accounting_and_names_a_bad_file(tmp_path):
    from splitlm.schemas.run import RunSummary

    good = RunSummary(documents_in=5, documents_quarantined={"empty_text": 1}, documents_duplicate=1,
                      documents_dropped=1, documents_windowed=2, windows=3, windows_val=1, tokens=30, tokens_in=33,
                      tokens_dropped=3, seq_len=9, tokenizer="gpt2", tokenizer_sha256="0", vocab_size=50257,
                      eos_id=50256, policy="concat", seed=0)
    good.write(tmp_path)
    assert RunSummary.read(tmp_path) == good
    with pytest.raises(ConfigError, match="curate cluster"):
        RunSummary.read(tmp_path, clustered=True)  # windows only, no clusters yet
    with pytest.raises(RuntimeError, match="document accounting"):
        good.model_copy(update={"documents_windowed": 3}).write(tmp_path)
    (tmp_path / "manifest.json").write_text('{"windows": "many"}')
    with pytest.raises(SchemaError, match="manifest.json"):
        RunSummary.read(tmp_path)


def test_stage_manifest_is_current_only_for_the_same_algorithm(tmp_path):
    manifest = StageManifest(stage="dedup", config={}, config_hash="c", input_fingerprint="i", algorithm=1)
    (tmp_path / "manifest.json").write_text(manifest.to_json())
    assert StageManifest.current(tmp_path, "c", "i", 1) == manifest
    assert StageManifest.current(tmp_path, "c", "i", 2) is None
    assert StageManifest.current(tmp_path, "c", "other", 1) is None
    # the algorithm is left out of what downstream stages fingerprint
    assert manifest.model_copy(update={"algorithm": 2}).output_fingerprint == manifest.output_fingerprint


@pytest.mark.parametrize("what", ["router", "routing"])
def test_versioned_specs_refuse_other_formats_naming_the_file(tmp_path, what):
    from splitlm.schemas.routing import RoutingSpec

    spec = _router_spec() if what == "router" else RoutingSpec(
        router="centroid", clusters_router_sha256="0" * 64, prefix_lengths=[8, 32], centroid_temperatures=[0.1, 0.2],
        windows=10, seed=0)
    path = tmp_path / f"{what}.json"
    path.write_text(spec.to_json())
    assert type(spec).read(path) == spec
    raw = json.loads(path.read_text())
    for version in (2, None, "1"):
        raw["format_version"] = version
        path.write_text(json.dumps(raw))
        with pytest.raises(SchemaError, match=rf"{what}.json: unsupported {what} format {version}"):
            type(spec).read(path)
    path.write_text("[1, 2]")
    with pytest.raises(SchemaError, match=f"{what}.json: unsupported {what} format None"):
        type(spec).read(path)
