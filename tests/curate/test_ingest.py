"""Ingest: every bad-row kind in one corpus, with exact counts; formats; one-line errors."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from splitlm.curate.ingest import DocumentReader, IngestConfig, Rejected, write_documents
from splitlm.curate.sources import find_sources
from splitlm.core.errors import InputError

BAD_CORPUS = [
    b'{"id": "a", "text": "alpha text", "meta": {"src": "web"}}',
    b'{"id": "b", "text": ',  # malformed_json
    b'{"id": "c", "text": "bad \xff\xfe bytes"}',  # invalid_utf8
    b'{"id": "d", "text": 5}',  # non_string_text
    b'{"id": "e", "text": "   \\n\\t "}',  # empty_text
    b'{"id": "f", "body": "no text field"}',  # missing_text
    b'{"id": "a", "text": "same id again"}',  # duplicate_id
    b'{"id": "g", "text": "' + b"x" * 300 + b'"}',  # too_large (max_chars=200)
    b"[1, 2, 3]",  # malformed_json: not an object
    b"",  # blank line: layout, not a row
    b'{"text": "no id: generated", "meta": {"src": "book"}}',
    b'{"id": 7, "text": "integer id"}',
]
EXPECTED_REASONS = {"malformed_json": 2, "invalid_utf8": 1, "non_string_text": 1, "empty_text": 1,
                    "missing_text": 1, "duplicate_id": 1, "too_large": 1}


@pytest.fixture
def bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(BAD_CORPUS) + b"\n")
    return path


def test_every_bad_row_kind_is_quarantined_with_exact_counts(bad_jsonl, tmp_path):
    reader = DocumentReader([bad_jsonl], IngestConfig(domain_field="meta.src", max_chars=200))
    out = tmp_path / "docs"
    out.mkdir()
    counts = write_documents(reader, out)
    assert counts["documents_quarantined"] == EXPECTED_REASONS
    assert counts["documents_accepted"] == 3
    assert counts["documents_in"] == 3 + sum(EXPECTED_REASONS.values())
    docs = pq.read_table(out / "part-00000.parquet").to_pylist()
    assert [d["doc_id"] for d in docs] == ["a", "bad.jsonl:11", "7"]
    assert [d["domain"] for d in docs] == ["web", "book", None]
    quarantine = pq.read_table(out / "quarantine-00000.parquet").to_pylist()
    assert [(q["line"], q["reason"]) for q in quarantine] == [
        (2, "malformed_json"), (3, "invalid_utf8"), (4, "non_string_text"), (5, "empty_text"),
        (6, "missing_text"), (7, "duplicate_id"), (8, "too_large"), (9, "malformed_json")]
    assert all(q["source"] == str(bad_jsonl) for q in quarantine)


def test_strict_names_file_and_line(bad_jsonl):
    reader = DocumentReader([bad_jsonl], IngestConfig(strict=True))
    with pytest.raises(InputError, match=r"bad\.jsonl:2: malformed_json"):
        list(reader)


def test_compressed_parquet_and_txt_inputs_agree(tmp_path):
    import zstandard

    rows = [{"id": f"d{i}", "text": f"document number {i}", "meta": {"label": f"L{i % 2}"}} for i in range(5)]
    payload = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(payload))
    (tmp_path / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(payload))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    txt = tmp_path / "txt" / "L1"
    txt.mkdir(parents=True)
    (txt / "one.txt").write_text("a text file")
    cfg = IngestConfig(domain_field="meta.label")
    for name in ("a.jsonl.gz", "b.jsonl.zst", "c.parquet"):
        docs = list(DocumentReader([tmp_path / name], cfg))
        assert [(d.doc_id, d.text, d.domain) for d in docs] == [
            (r["id"], r["text"], r["meta"]["label"]) for r in rows], name
    (doc,) = list(DocumentReader([tmp_path / "txt"], cfg))
    assert (doc.doc_id, doc.text, doc.domain) == ("L1/one.txt", "a text file", "L1")


def test_invalid_utf8_txt_is_quarantined(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    (item,) = list(DocumentReader([tmp_path / "bad.txt"], IngestConfig()))
    assert isinstance(item, Rejected) and item.reason == "invalid_utf8"


@pytest.mark.parametrize("name, message", [
    ("missing.jsonl", "no such file"),
    ("data.csv", "unknown format"),
])
def test_bad_paths_are_one_line_errors(tmp_path, name, message):
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("a,b\n")
    with pytest.raises(InputError, match=message) as info:
        find_sources([path])
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    data = gzip.compress(b'{"text": "x"}\n' * 1000)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jsonl.gz: cannot decompress"):
        list(DocumentReader([path], IngestConfig()))
