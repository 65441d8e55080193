"""Generic core: Parquet part rotation, atomic outputs and the stage runner."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from splitlm.core.atomic import FILE_MODE, atomic_path, atomic_write_text, publish_folder
from splitlm.core.parts import PartWriter, iter_batches, part_files, read_table
from splitlm.core.stage import MANIFEST, run_stage
from splitlm.core.errors import SchemaError

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("text", pa.string())])


def _write(folder: Path, n: int, rows_per_part: int = 10, rows_per_group: int = 3) -> PartWriter:
    writer = PartWriter(folder, "rows", SCHEMA, rows_per_group=rows_per_group, rows_per_part=rows_per_part)
    for i in range(n):
        writer.write({"id": i, "text": f"row {i}"})
    writer.close()
    return writer


# --- PartWriter rotation -------------------------------------------------------------------------


def test_parts_rotate_at_row_group_boundaries(tmp_path):
    # Groups of 3 rows; a part closes once it holds >= 10 rows, i.e. after 4 groups (12 rows).
    writer = _write(tmp_path, 25)
    files = part_files(tmp_path, "rows")
    assert [p.name for p in files] == ["rows-00000.parquet", "rows-00001.parquet", "rows-00002.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in files]  # nothing else left behind
    assert [pq.ParquetFile(p).metadata.num_rows for p in files] == [12, 12, 1]
    for p in files:
        meta = pq.ParquetFile(p).metadata
        assert all(meta.row_group(g).num_rows <= 3 for g in range(meta.num_row_groups))
        assert meta.num_rows <= 10 + 3 - 1  # a part overshoots rows_per_part by less than one group
    assert writer.rows == 25


def test_parts_hold_exactly_rows_per_part_when_groups_divide_it(tmp_path):
    _write(tmp_path, 30, rows_per_part=10, rows_per_group=5)
    files = part_files(tmp_path, "rows")
    assert [p.name for p in files] == [f"rows-{i:05d}.parquet" for i in range(3)]
    assert [pq.ParquetFile(p).metadata.num_rows for p in files] == [10, 10, 10]


def test_a_full_last_part_leaves_no_trailing_empty_part(tmp_path):
    _write(tmp_path, 24)  # exactly two parts of 4 groups of 3
    assert [pq.ParquetFile(p).metadata.num_rows for p in part_files(tmp_path, "rows")] == [12, 12]


def test_row_order_is_preserved_across_parts(tmp_path):
    _write(tmp_path, 25)
    assert read_table(tmp_path, "rows", SCHEMA).column("id").to_pylist() == list(range(25))
    ids = [i for batch in iter_batches(tmp_path, "rows", SCHEMA, batch_size=4) for i in batch.column("id").to_pylist()]
    assert ids == list(range(25))
    texts = [t for b in iter_batches(tmp_path, "rows", SCHEMA, columns=["text"]) for t in b.column(0).to_pylist()]
    assert texts == [f"row {i}" for i in range(25)]
    assert read_table(tmp_path, "rows", SCHEMA, columns=["text"]).column_names == ["text"]


def test_other_prefixes_in_the_folder_are_not_read(tmp_path):
    _write(tmp_path, 5)
    other = PartWriter(tmp_path, "other", SCHEMA)
    other.write({"id": 99, "text": None})
    other.close()
    assert read_table(tmp_path, "rows", SCHEMA).column("id").to_pylist() == list(range(5))
    assert read_table(tmp_path, "other", SCHEMA).to_pylist() == [{"id": 99, "text": None}]


def test_an_empty_writer_leaves_one_empty_part_with_the_schema(tmp_path):
    writer = _write(tmp_path, 0)
    assert writer.rows == 0
    files = part_files(tmp_path, "rows")
    assert [p.name for p in files] == ["rows-00000.parquet"]
    assert pq.read_schema(files[0]).equals(SCHEMA, check_metadata=False)
    table = read_table(tmp_path, "rows", SCHEMA)
    assert table.num_rows == 0 and table.schema.equals(SCHEMA, check_metadata=False)
    assert sum(b.num_rows for b in iter_batches(tmp_path, "rows", SCHEMA)) == 0


def test_no_parts_at_all_reads_as_an_empty_table(tmp_path):
    assert read_table(tmp_path, "rows", SCHEMA).num_rows == 0
    assert read_table(tmp_path, "rows", SCHEMA, columns=["id"]).column_names == ["id"]
    assert list(iter_batches(tmp_path, "rows", SCHEMA)) == []


@pytest.mark.parametrize(
    "bad",
    [
        pa.table({"id": pa.array([1], pa.int32()), "text": ["x"]}),  # same names, another type
        pa.table({"text": ["x"], "id": pa.array([1], pa.int64())}),  # same fields, another order
        pa.table({"id": pa.array([1], pa.int64())}),  # a column missing
    ],
    ids=["type", "order", "missing"],
)
def test_a_part_with_a_wrong_schema_is_a_schema_error_naming_it(tmp_path, bad):
    _write(tmp_path, 12)  # rows-00000 and rows-00001 are fine
    pq.write_table(bad, tmp_path / "rows-00002.parquet")
    with pytest.raises(SchemaError, match="rows-00002.parquet"):
        read_table(tmp_path, "rows", SCHEMA)
    with pytest.raises(SchemaError, match="rows-00002.parquet"):
        for _ in iter_batches(tmp_path, "rows", SCHEMA):
            pass


# --- atomic outputs ------------------------------------------------------------------------------


def test_atomic_write_text_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")  # replacing an existing file
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_failing_write_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name != target.name
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failing_folder_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "folder"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "a").write_text("x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_published_files_get_the_umask_mode_whatever_wrote_them(tmp_path):
    """safetensors creates its files 0600; a published file or folder reads like any other file."""
    with atomic_path(tmp_path / "weights.bin") as tmp:
        tmp.write_bytes(b"w")
        tmp.chmod(0o600)
    partial = tmp_path / ".folder.partial"
    (partial / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        (partial / name).write_text("x")
        (partial / name).chmod(0o600)
    publish_folder(partial, tmp_path / "folder")
    files = [tmp_path / "weights.bin", tmp_path / "folder/a", tmp_path / "folder/sub/b"]
    assert FILE_MODE & 0o044  # this machine's umask lets others read
    assert [f.stat().st_mode & 0o777 for f in files] == [FILE_MODE] * 3


# --- the stage runner ----------------------------------------------------------------------------


@dataclass
class Record:
    value: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def _current(final: Path) -> Record | None:
    path = final / MANIFEST
    return Record(**json.loads(path.read_text())) if path.exists() else None


class Builder:
    def __init__(self, value: int = 1, fail: bool = False):
        self.value, self.fail, self.calls = value, fail, 0

    def __call__(self, partial: Path) -> Record:
        self.calls += 1
        assert partial.name == ".stage.partial" and list(partial.iterdir()) == []  # a fresh folder
        (partial / "data.txt").write_text(f"data {self.value}")
        if self.fail:
            raise RuntimeError("build failed")
        return Record(self.value)


def test_run_stage_builds_once_then_skips(tmp_path):
    final, build = tmp_path / "stage", Builder()
    record, ran = run_stage(final, _current, build)
    assert (record, ran, build.calls) == (Record(1), True, 1)
    assert json.loads((final / MANIFEST).read_text()) == {"value": 1}
    assert (final / "data.txt").read_text() == "data 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]  # the partial folder is gone

    record, ran = run_stage(final, _current, build)
    assert (record, ran, build.calls) == (Record(1), False, 1)


def test_run_stage_replaces_a_stale_folder(tmp_path):
    final = tmp_path / "stage"
    run_stage(final, _current, Builder(1))
    (final / "stale.txt").write_text("from the old build")
    record, ran = run_stage(final, lambda f: None, Builder(2))  # `current` says: not this config
    assert (record, ran) == (Record(2), True)
    assert sorted(p.name for p in final.iterdir()) == ["data.txt", MANIFEST]
    assert (final / "data.txt").read_text() == "data 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]  # no .old nor .partial left


def test_a_failed_build_publishes_nothing(tmp_path):
    final = tmp_path / "stage"
    with pytest.raises(RuntimeError, match="build failed"):
        run_stage(final, _current, Builder(fail=True))
    assert not final.exists()
    record, ran = run_stage(final, _current, Builder(3))  # the next run starts from a fresh partial
    assert (record, ran) == (Record(3), True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]
