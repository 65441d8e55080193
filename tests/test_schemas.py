"""Data contracts: every table schema round-trips through the part writer; a wrong schema is an error."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from splitlm.core.parts import PartWriter, read_table
from splitlm.errors import SchemaError
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
