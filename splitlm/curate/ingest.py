"""Ingest: stream corpus files into validated documents; every bad row is quarantined and counted.

The files come from `splitlm.curate.sources` (formats, folder walking, damaged files). Field names
are dotted paths into the record (`meta.pile_set_name`); for Parquet they address struct fields.
A `.txt` file is one document whose id is its path relative to the input folder and whose domain
(when `--domain-field` is given, any value) is its parent folder's name.

Ids are text. A number is read as its JSON text, so the id `1` and the id `"1"` are the same id and
the second is quarantined as `duplicate_id` (its detail says the first was a number). A missing or
null id is generated as `<path relative to the input>:<line>`.

A row is rejected with one of these reasons, in this order of checks:
invalid_utf8 (bad bytes), malformed_json, missing_text, non_string_text, empty_text, invalid_utf8
(a lone surrogate escape such as `\ud800` in the text, id or domain, which no UTF-8 file can
hold), too_large, invalid_id, duplicate_id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from splitlm.core.errors import ConfigError, InputError
from splitlm.core.parts import PartWriter
from splitlm.curate.sources import SKIPPED, file_format, find_sources, read_records
from splitlm.schemas.tables import DOCUMENTS, QUARANTINE

ALGORITHM = 2  # bump when the same config and input would give other output (see `splitlm.curate.stage`)

QUARANTINE_REASONS = (
    "invalid_utf8",
    "malformed_json",
    "missing_text",
    "non_string_text",
    "empty_text",
    "too_large",
    "invalid_id",
    "duplicate_id",
)
_MISSING = object()
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    part_mb: float = 256.0
    """Input megabytes per file group, the unit of work of every stage up to windows (`--part-mb`)."""

    def __post_init__(self):
        if self.max_chars <= 0:
            raise ConfigError(f"--max-chars must be positive, got {self.max_chars}")
        if self.part_mb <= 0:
            raise ConfigError(f"--part-mb must be positive, got {self.part_mb}")


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


def get_field(record: Any, dotted: str) -> Any:
    value = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


class DocumentReader:
    """Iterates Documents over all inputs, collecting Rejected rows in `self.rejected` order."""

    def __init__(self, inputs: list[Path | str], config: IngestConfig, run: Path | None = None,
                 files: list[tuple[Path, Path]] | None = None):
        """Over the corpus files under `inputs`, or exactly `files` ((file, input root) pairs) when given."""
        if files is None:
            sources = find_sources(inputs, run)
            self.files, self.skipped = sources.files, sources.skipped
        else:
            self.files, self.skipped = [(Path(f), Path(r)) for f, r in files], Counter()
        self.config = config
        self._names = {path: str(path.relative_to(root)) for path, root in self.files}
        self._seen_ids: dict[str, str] = {}  # id -> the JSON type it first came as

    def __iter__(self) -> Iterator[Document | Rejected]:
        for path, root in self.files:
            txt = file_format(path) == "txt"
            for raw in read_records(path, root, self.config.domain_field):
                item = (Rejected(str(path), raw.line, raw.reason, raw.detail) if raw.record is None
                        else self._validate(path, raw.line, raw.record, txt))
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
        if _SURROGATE.search(text):  # a JSON escape like \ud800 that no UTF-8 file can hold
            return Rejected(source, line, "invalid_utf8", "text holds a lone surrogate escape")
        if len(text) > cfg.max_chars:
            return Rejected(source, line, "too_large", f"{len(text)} characters > --max-chars {cfg.max_chars}")
        doc_id = record["id"] if txt else get_field(record, cfg.id_field)
        if doc_id is _MISSING or doc_id is None:
            doc_id = f"{self._names[path]}:{line}"
        if isinstance(doc_id, (dict, list)):
            return Rejected(source, line, "invalid_id", f"{cfg.id_field!r} is a JSON {type(doc_id).__name__}")
        kind, doc_id = type(doc_id).__name__, str(doc_id)
        if _SURROGATE.search(doc_id):
            return Rejected(source, line, "invalid_utf8", "id holds a lone surrogate escape")
        domain = None
        if cfg.domain_field:
            value = record.get(cfg.domain_field) if txt else get_field(record, cfg.domain_field)
            domain = None if value is _MISSING or value is None else str(value)
            if domain is not None and _SURROGATE.search(domain):
                return Rejected(source, line, "invalid_utf8", "domain holds a lone surrogate escape")
        if doc_id in self._seen_ids:
            first = self._seen_ids[doc_id]
            note = "" if first == kind else f" (first as a {first}: ids compare as text)"
            return Rejected(source, line, "duplicate_id", f"id {doc_id!r} seen before{note}")
        self._seen_ids[doc_id] = kind
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
        "files_skipped": {reason: reader.skipped[reason] for reason in SKIPPED},
    }
