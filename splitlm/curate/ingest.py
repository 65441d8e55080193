"""Ingest: stream corpus files into validated documents; every bad row is quarantined and counted.

Formats: JSONL (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`, also `.json` lines), Parquet, and `.txt` files
(a folder is searched recursively for all of these, in sorted order). Field names are dotted paths
into the record (`meta.pile_set_name`); for Parquet they address struct fields. Generated ids are
`<path relative to the input>:<line>`. A `.txt` file is
one document whose id is its path relative to the input folder and whose domain (when
`--domain-field` is given, any value) is its parent folder's name.

A row is rejected with one of these reasons, in this order of checks:
invalid_utf8, malformed_json, missing_text, non_string_text, empty_text, too_large, duplicate_id.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from splitlm.core.parts import PartWriter
from splitlm.core.errors import ConfigError, InputError
from splitlm.schemas.tables import DOCUMENTS, QUARANTINE

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)

QUARANTINE_REASONS = (
    "invalid_utf8",
    "malformed_json",
    "missing_text",
    "non_string_text",
    "empty_text",
    "too_large",
    "duplicate_id",
)
_MISSING = object()


@dataclass(frozen=True)
class IngestConfig:
    text_field: str = "text"
    """Dotted path of the document text."""
    id_field: str = "id"
    """Dotted path of the document id; absent ids are generated as `<file name>:<line>`."""
    domain_field: str | None = None
    """Dotted path of a domain label to carry through (e.g. `meta.pile_set_name`)."""
    max_chars: int = 50_000_000
    """Documents longer than this are quarantined as `too_large` (they would stall a worker)."""
    strict: bool = False
    """Turn the first bad row into an error naming file:line instead of quarantining it."""

    def __post_init__(self):
        if self.max_chars <= 0:
            raise ConfigError(f"--max-chars must be positive, got {self.max_chars}")


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    domain: str | None
    source: str
    line: int


@dataclass(frozen=True)
class Rejected:
    source: str
    line: int
    reason: str
    detail: str


def _format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in ((".jsonl", "jsonl"), (".jsonl.gz", "jsonl"), (".jsonl.zst", "jsonl"),
                        (".json", "jsonl"), (".json.gz", "jsonl"), (".parquet", "parquet"), (".txt", "txt")):
        if name.endswith(suffix):
            return fmt
    return None


def expand_inputs(inputs: list[Path | str]) -> list[tuple[Path, Path]]:
    """(file, root) pairs in a stable order; a bad path or unknown format is a one-line error."""
    if not inputs:
        raise ConfigError("no input given: pass one or more corpus files or folders")
    files: list[tuple[Path, Path]] = []
    for raw in inputs:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _format(p))
            if not found:
                raise InputError(f"{path}: folder holds no .jsonl[.gz|.zst], .parquet or .txt files")
            files += [(p, path) for p in found]
        elif _format(path) is None:
            raise InputError(f"{path}: unknown format (expected .jsonl, .jsonl.gz, .jsonl.zst, .parquet or .txt)")
        else:
            files.append((path, path.parent))
    for path, _ in files:
        try:
            with open(path, "rb"):
                pass
        except OSError as err:
            raise InputError(f"{path}: cannot read ({err.strerror})") from err
    return files


def get_field(record: Any, dotted: str) -> Any:
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _open_binary(path: Path) -> io.BufferedIOBase:
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _jsonl_records(path: Path) -> Iterator[tuple[int, Any, Rejected | None]]:
    source = str(path)
    with _open_binary(path) as fh:
        try:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue  # blank lines are layout, not documents
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    yield line_no, None, Rejected(source, line_no, "invalid_utf8", str(err))
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    yield line_no, None, Rejected(source, line_no, "malformed_json", str(err))
                    continue
                if not isinstance(record, dict):
                    yield line_no, None, Rejected(source, line_no, "malformed_json", "line is not a JSON object")
                    continue
                yield line_no, record, None
        except (OSError, EOFError) as err:  # truncated or corrupt compressed stream
            raise InputError(f"{path}: cannot decompress ({err})") from err


def _parquet_records(path: Path) -> Iterator[tuple[int, Any, Rejected | None]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from err
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield row, record, None


def _txt_records(path: Path, root: Path, domain_field: str | None) -> Iterator[tuple[int, Any, Rejected | None]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        yield 1, None, Rejected(str(path), 1, "invalid_utf8", str(err))
        return
    rel = path.relative_to(root)
    record: dict[str, Any] = {"text": text, "id": str(rel)}
    if domain_field and rel.parent != Path("."):
        record[domain_field] = rel.parent.name
    yield 1, record, None


class DocumentReader:
    """Iterates Documents over all inputs, collecting Rejected rows in `self.rejected` order."""

    def __init__(self, inputs: list[Path | str], config: IngestConfig):
        self.files = expand_inputs(inputs)
        self.config = config
        self._names = {path: str(path.relative_to(root)) for path, root in self.files}
        self._seen_ids: set[str] = set()

    def _records(self, path: Path, root: Path):
        fmt = _format(path)
        if fmt == "jsonl":
            return _jsonl_records(path)
        if fmt == "parquet":
            return _parquet_records(path)
        return _txt_records(path, root, self.config.domain_field)

    def __iter__(self) -> Iterator[Document | Rejected]:
        for path, root in self.files:
            txt = _format(path) == "txt"
            for line, record, rejected in self._records(path, root):
                item = rejected or self._validate(path, line, record, txt)
                if isinstance(item, Rejected) and self.config.strict:
                    raise InputError(f"{item.source}:{item.line}: {item.reason} ({item.detail})")
                yield item

    def _validate(self, path: Path, line: int, record: dict, txt: bool) -> Document | Rejected:
        cfg, source = self.config, str(path)
        text = record["text"] if txt else get_field(record, cfg.text_field)
        if text is _MISSING:
            return Rejected(source, line, "missing_text", f"no field {cfg.text_field!r}")
        if not isinstance(text, str):
            return Rejected(source, line, "non_string_text", f"{cfg.text_field!r} is {type(text).__name__}")
        if not text.strip():
            return Rejected(source, line, "empty_text", "text is empty or whitespace")
        if len(text) > cfg.max_chars:
            return Rejected(source, line, "too_large", f"{len(text)} characters > --max-chars {cfg.max_chars}")
        doc_id = record["id"] if txt else get_field(record, cfg.id_field)
        if doc_id is _MISSING or doc_id is None:
            doc_id = f"{self._names[path]}:{line}"
        doc_id = str(doc_id)
        if doc_id in self._seen_ids:
            return Rejected(source, line, "duplicate_id", f"id {doc_id!r} seen before")
        self._seen_ids.add(doc_id)
        domain = None
        if cfg.domain_field:
            value = record.get(cfg.domain_field) if txt else get_field(record, cfg.domain_field)
            domain = None if value is _MISSING or value is None else str(value)
        return Document(doc_id, text, domain, source, line)


def write_documents(reader: DocumentReader, out: Path, advance=lambda n: None) -> dict[str, Any]:
    """The documents stage: accepted rows to `part-*.parquet`, rejected ones to `quarantine-*`."""
    docs = PartWriter(out, "part", DOCUMENTS)
    quarantine = PartWriter(out, "quarantine", QUARANTINE)
    reasons: Counter[str] = Counter()
    for item in reader:
        if isinstance(item, Rejected):
            quarantine.write(asdict(item))
            reasons[item.reason] += 1
        else:
            docs.write(asdict(item))
        advance(1)
    docs.close()
    quarantine.close()
    return {
        "documents_in": docs.rows + sum(reasons.values()),
        "documents_accepted": docs.rows,
        "documents_quarantined": dict(sorted(reasons.items())),
        "files": len(reader.files),
    }
