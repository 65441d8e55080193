"""Parquet parts: a writer that rotates files and row groups, and a reader that checks schemas.

Row groups are bounded (`rows_per_group`) so writers and readers hold one group at a time:
memory stays flat however large the corpus is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from splitlm.core.errors import SchemaError


def check_schema(table_or_schema: pa.Table | pa.Schema, expected: pa.Schema, path: Path | str) -> None:
    """Raise SchemaError naming `path` unless the names and types match `expected` exactly."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    got = [(f.name, f.type) for f in schema]
    want = [(f.name, f.type) for f in expected]
    if got != want:
        raise SchemaError(f"{path}: schema {got} does not match the expected {want}")


class PartWriter:
    """Writes `prefix-00000.parquet`, `prefix-00001.parquet`, ... under `folder`."""

    def __init__(self, folder: Path, prefix: str, schema: pa.Schema, rows_per_group: int = 4096,
                 rows_per_part: int = 1_000_000, first_part: int = 0):
        self.folder, self.prefix, self.schema = folder, prefix, schema
        self.rows_per_group, self.rows_per_part = rows_per_group, rows_per_part
        self._buffer: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._first = first_part
        self._part, self._rows_in_part = first_part, 0
        self.rows = 0

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.rows_per_group:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = self.folder / f"{self.prefix}-{self._part:05d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
        self.rows += len(self._buffer)
        self._rows_in_part += len(self._buffer)
        self._buffer = []
        if self._rows_in_part >= self.rows_per_part:
            self._writer.close()
            self._writer, self._part, self._rows_in_part = None, self._part + 1, 0

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
        elif self.rows == 0:  # an empty table still gets a file, so readers see the schema
            pq.write_table(self.schema.empty_table(), self.folder / f"{self.prefix}-{self._first:05d}.parquet")


def part_files(folder: Path, prefix: str) -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.parquet"))


def iter_batches(folder: Path, prefix: str, schema: pa.Schema, columns: list[str] | None = None,
                 batch_size: int = 4096) -> Iterator[pa.RecordBatch]:
    """Record batches of every part in order; a part with the wrong schema is a SchemaError."""
    for path in part_files(folder, prefix):
        pf = pq.ParquetFile(path)
        check_schema(pf.schema_arrow, schema, path)
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)


def read_table(folder: Path, prefix: str, schema: pa.Schema, columns: list[str] | None = None) -> pa.Table:
    tables = []
    for path in part_files(folder, prefix):
        check_schema(pq.read_schema(path), schema, path)
        tables.append(pq.read_table(path, columns=columns))
    if not tables:
        return schema.empty_table() if columns is None else schema.empty_table().select(columns)
    return pa.concat_tables(tables)
