"""Sources: find the corpus files under the inputs and stream raw records out of them.

Formats: JSONL (`.jsonl`, `.json`, each optionally `.gz` or `.zst`), Parquet, and `.txt` (one
document per file). A folder is walked recursively in sorted order, following symbolic links; what
the walk passes over is counted, never dropped silently: `other_format` (files of other types),
`broken_link` and `symlink_loop` (a link back to a folder already on the walk). A damaged file
(truncated or corrupt gzip/zstd, unreadable Parquet pages) stops the run with one line naming it:
its remaining rows cannot be counted, so nothing after the damage could be accounted for.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from splitlm.core.compressed import CorruptStream, open_stream
from splitlm.core.errors import ConfigError, InputError
from splitlm.core.paths import inside

SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".txt": "txt"}
SKIPPED = ("other_format", "broken_link", "symlink_loop")


@dataclass(frozen=True)
class Raw:
    """One raw row: a record to validate, or the reason it could not be read (`invalid_utf8`...)."""

    line: int
    record: dict | None
    reason: str = ""
    detail: str = ""


@dataclass
class Sources:
    files: list[tuple[Path, Path]] = field(default_factory=list)  # (file, the input it was found under)
    skipped: Counter = field(default_factory=Counter)


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    for ext in (".gz", ".zst"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            if not name.endswith((".jsonl", ".json")):
                return None
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


def find_sources(inputs: list[Path | str], run: Path | None = None) -> Sources:
    """Every corpus file under `inputs`, in a stable order; `run` (the output folder) must not be among them."""
    if not inputs:
        raise ConfigError("no input given: pass one or more corpus files or folders")
    found = Sources()
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if run is not None and path.is_dir() and inside(run, path):
            raise ConfigError(f"--out {run} is inside the input {path}: a rerun would read the run's own "
                              "outputs as corpus; put the run folder elsewhere")
        if path.is_dir():
            files = _walk(path, found.skipped)
            if not files:
                raise InputError(f"{path}: folder holds no .jsonl[.gz|.zst], .parquet or .txt files")
            found.files += [(p, path) for p in files]
        elif file_format(path) is None:
            raise InputError(f"{path}: unknown format (expected .jsonl, .jsonl.gz, .jsonl.zst, .parquet or .txt)")
        else:
            found.files.append((path, path.parent))
    for path, _ in found.files:
        try:
            with open(path, "rb"):
                pass
        except OSError as err:
            raise InputError(f"{path}: cannot read ({err.strerror})") from err
    return found


def _walk(root: Path, skipped: Counter) -> list[Path]:
    """Files under `root` (sorted by path), following links; links back up the walk are counted, not followed."""
    files: list[Path] = []
    stack = [(root, (root.resolve(),))]
    while stack:
        folder, chain = stack.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name, reverse=True):
            path = Path(entry.path)
            if entry.is_symlink() and not path.exists():
                skipped["broken_link"] += 1
            elif entry.is_dir():
                real = path.resolve()
                if real in chain:
                    skipped["symlink_loop"] += 1
                else:
                    stack.append((path, (*chain, real)))
            elif file_format(path) is None:
                skipped["other_format"] += 1
            else:
                files.append(path)
    return sorted(files)


def read_records(path: Path, root: Path, domain_field: str | None) -> Iterator[Raw]:
    """The raw rows of one file; a damaged file raises one InputError naming it."""
    fmt = file_format(path)
    try:
        if fmt == "jsonl":
            yield from _jsonl(path)
        elif fmt == "parquet":
            yield from _parquet(path)
        else:
            yield from _txt(path, root, domain_field)
    except CorruptStream as err:
        raise InputError(f"{path}: cannot decompress ({err}); the rows after the damage cannot be counted, "
                         "so fix or remove the file") from err


def _jsonl(path: Path) -> Iterator[Raw]:
    with open_stream(path) as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue  # blank lines are layout, not documents
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                yield Raw(line_no, None, "invalid_utf8", str(err))
                continue
            except json.JSONDecodeError as err:
                yield Raw(line_no, None, "malformed_json", str(err))
                continue
            if not isinstance(record, dict):
                yield Raw(line_no, None, "malformed_json", "line is not a JSON object")
                continue
            yield Raw(line_no, record)


def _parquet(path: Path) -> Iterator[Raw]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from err
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=4096):
            for record in batch.to_pylist():
                row += 1
                yield Raw(row, record)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: damaged Parquet data after row {row} ({err}); the rows after the damage "
                         "cannot be counted, so fix or remove the file") from err


def _txt(path: Path, root: Path, domain_field: str | None) -> Iterator[Raw]:
    """One document; its id is the path under the input, its domain (any --domain-field) the parent folder."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        yield Raw(1, None, "invalid_utf8", str(err))
        return
    rel = path.relative_to(root)
    record: dict[str, Any] = {"text": text, "id": str(rel)}
    if domain_field and rel.parent != Path("."):
        record[domain_field] = rel.parent.name
    yield Raw(1, record)
