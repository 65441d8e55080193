"""The bad-input suite for curation (issue 15): each case runs the real command in a subprocess.

A case that must fail asserts exit 1, one `error:` line naming the culprit and no traceback; a
case that must succeed asserts the run summary still accounts for every document.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from safetensors.numpy import save_file

from splitlm.schemas.run import RunSummary
from tests.curate.test_shards import write_run
from tests.reliability.conftest import assert_clean_error

DOCS = 180
SHORT = ["--seq-len", "32"]


def _lines(n: int = DOCS) -> bytes:
    return "".join(json.dumps({"id": i, "text": f"document {i} says " + "words " * 40}) + "\n"
                   for i in range(n)).encode()


def _flip(data: bytes, start: int, count: int = 16) -> bytes:
    out = bytearray(data)
    for i in range(start, start + count):
        out[i] ^= 0xFF
    return bytes(out)


def _parquet_bytes() -> bytes:
    sink = io.BytesIO()
    table = pa.table({"id": list(range(DOCS)), "text": [f"doc {i} " + "x y z " * 200 for i in range(DOCS)]})
    pq.write_table(table, sink, compression="none", row_group_size=DOCS)
    return sink.getvalue()


def _damaged(kind: str) -> tuple[str, bytes]:
    zst = zstandard.ZstdCompressor(level=3).compress(_lines())
    gz = gzip.compress(_lines())
    return {
        "zst cut to 60%": ("c.jsonl.zst", zst[: int(len(zst) * 0.6)]),
        "zst cut in half": ("c.jsonl.zst", zst[: len(zst) // 2]),
        "zst that is not zstd": ("c.jsonl.zst", b"plain text pretending to be zstd\n" * 20),
        "gz with flipped bytes": ("c.jsonl.gz", _flip(gz, len(gz) // 3)),
        "gz cut in half": ("c.jsonl.gz", gz[: len(gz) // 2]),
        "parquet with corrupt data pages": ("c.parquet", _flip(_parquet_bytes(), 200, 4000)),
        "parquet with no footer": ("c.parquet", _parquet_bytes()[:-100]),
    }[kind]


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("kind", ["zst cut to 60%", "zst cut in half", "zst that is not zstd",
                                  "gz with flipped bytes", "gz cut in half", "parquet with corrupt data pages",
                                  "parquet with no footer"])
def test_a_damaged_file_stops_the_run_naming_it(cli, tmp_path, kind, strict):
    name, data = _damaged(kind)
    (tmp_path / name).write_bytes(data)
    result = cli("curate", "windows", tmp_path / name, "--out", tmp_path / "run", *SHORT,
                 *(["--strict"] if strict else []))
    assert_clean_error(result, name)
    assert not (tmp_path / "run" / "documents").exists()
    assert not (tmp_path / "run" / ".documents.partial").exists(), "a failed stage leaves its partial folder"


def test_an_intact_zst_counts_every_document(cli, tmp_path):
    (tmp_path / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_lines()))
    result = cli("curate", "windows", tmp_path / "c.jsonl.zst", "--out", tmp_path / "run", *SHORT)
    assert result.returncode == 0, result.stderr
    summary = RunSummary.read(tmp_path / "run")
    assert summary.documents_in == DOCS and summary.documents_accounted == DOCS


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus"
    path.mkdir()
    (path / "a.jsonl").write_bytes(_lines(20))
    return path


@pytest.mark.parametrize("where", ["an existing file", "under a file"])
def test_out_that_cannot_be_a_folder(cli, tmp_path, corpus, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "an existing file" else blocker / "run"
    assert_clean_error(cli("curate", "windows", corpus, "--out", out, *SHORT), "--out", str(blocker))


def test_a_run_inside_its_own_input_is_refused(cli, corpus):
    result = cli("curate", "windows", corpus, "--out", corpus / "run", *SHORT)
    assert_clean_error(result, "--out", "inside the input")
    assert not (corpus / "run").exists()


def test_strict_failure_leaves_no_partial_folder(cli, tmp_path, corpus):
    (corpus / "b.jsonl").write_text('{"id": "x", "text": "fine"}\nnot json\n')
    result = cli("curate", "windows", corpus, "--out", tmp_path / "run", "--strict", *SHORT)
    assert_clean_error(result, "b.jsonl:2", "malformed_json")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_skipped_files_and_symlink_loops_are_counted(cli, tmp_path, corpus):
    (corpus / "notes.md").write_text("not a corpus file")
    (corpus / "sub").mkdir()
    (corpus / "sub" / "c.jsonl").write_text('{"id": "c", "text": "one more document"}\n')
    os.symlink(corpus, corpus / "sub" / "loop")
    os.symlink(tmp_path / "gone", corpus / "broken.jsonl")
    result = cli("curate", "windows", corpus, "--out", tmp_path / "run", *SHORT)
    assert result.returncode == 0, result.stderr
    summary = RunSummary.read(tmp_path / "run")
    assert summary.files_skipped == {"other_format": 1, "broken_link": 1, "symlink_loop": 1}
    assert summary.documents_in == 21 == summary.documents_accounted
    assert "symlink_loop" in result.stdout


def test_number_and_string_ids_are_the_same_id(cli, tmp_path):
    path = tmp_path / "ids.jsonl"
    path.write_text('{"id": 1, "text": "first document"}\n{"id": "1", "text": "second document"}\n')
    result = cli("curate", "windows", path, "--out", tmp_path / "run", *SHORT)
    assert result.returncode == 0, result.stderr
    summary = RunSummary.read(tmp_path / "run")
    assert summary.documents_quarantined == {"duplicate_id": 1} and summary.documents_accounted == 2
    row = pq.read_table(tmp_path / "run" / "documents" / "quarantine-00000.parquet").to_pylist()[0]
    assert row["line"] == 2 and "first as a int" in row["detail"]


def test_rich_markup_in_a_label_is_printed_as_text(cli, tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": "words " * 30, "domain": "[/bold]"}) + "\n" for i in range(4)))
    result = cli("curate", "windows", path, "--out", tmp_path / "run[/bold]", "--domain-field", "domain", *SHORT)
    assert result.returncode == 0, result.stderr
    assert "run[/bold]" in re.sub(r"\s*\n\s*", "", result.stdout)  # rich wraps a long title to the table's width


# --- curate route: a hand-built run (K=3, 4-dimensional router) is enough to reach every check -----

@pytest.fixture
def routed_run(tmp_path):
    run = write_run(tmp_path / "run")
    save_file({"centroids_KD": np.eye(3, 4, dtype=np.float32), "biases_K": np.zeros(3, np.float32)},
              str(run / "clusters" / "router.safetensors"))
    return run


@pytest.mark.parametrize("value", ["0", "-3"])
def test_route_refuses_an_empty_prefix(cli, routed_run, corpus, value):
    result = cli("curate", "route", routed_run, corpus, "--out", routed_run.parent / "r.jsonl", "--prefix-tokens", value)
    assert_clean_error(result, f"--prefix-tokens {value}")


def test_route_refuses_to_overwrite_its_input(cli, routed_run, corpus):
    before = (corpus / "a.jsonl").read_bytes()
    result = cli("curate", "route", routed_run, corpus / "a.jsonl", "--out", corpus / "a.jsonl")
    assert_clean_error(result, "--out", "a.jsonl")
    assert (corpus / "a.jsonl").read_bytes() == before


def test_route_refuses_an_out_inside_its_input_folder(cli, routed_run, corpus):
    assert_clean_error(cli("curate", "route", routed_run, corpus, "--out", corpus / "routed.jsonl"),
                       "inside the input folder")


@pytest.mark.parametrize("damage", ["invalid json", "no embedder", "k edited", "truncated tensors"])
def test_a_damaged_router_is_named(cli, routed_run, corpus, damage):
    spec_path = routed_run / "clusters" / "router.json"
    tensors = routed_run / "clusters" / "router.safetensors"
    spec = json.loads(spec_path.read_text())
    if damage == "invalid json":
        spec_path.write_text(spec_path.read_text()[:40])
    elif damage == "no embedder":
        spec_path.write_text(json.dumps({k: v for k, v in spec.items() if k != "embedder"}))
    elif damage == "k edited":
        spec_path.write_text(json.dumps({**spec, "k": 5}))
    else:
        tensors.write_bytes(tensors.read_bytes()[:-10])
    result = cli("curate", "route", routed_run, corpus, "--out", routed_run.parent / "r.jsonl")
    name = "router.safetensors" if damage in ("k edited", "truncated tensors") else "router.json"
    assert_clean_error(result, name)


def test_verify_names_a_flipped_byte(cli, tmp_path, corpus):
    run = tmp_path / "run"
    assert cli("curate", "windows", corpus, "--out", run, *SHORT).returncode == 0
    ok = cli("curate", "verify", run)
    assert ok.returncode == 0 and "verified" in ok.stdout, ok.stderr
    data = bytearray((run / "windows" / "tokens.bin").read_bytes())
    data[7] ^= 1
    (run / "windows" / "tokens.bin").write_bytes(bytes(data))
    assert_clean_error(cli("curate", "verify", run), "windows/tokens.bin", "sha256")
