"""The partitioned layout: parted rows, token parts, file groups, resume, verify, export, training reads."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.core.parted import PartedRows
from splitlm.curate.engine import stages
from splitlm.curate.export import write_megatron
from splitlm.curate.ingest import IngestConfig
from splitlm.curate.pipeline import WindowsRunConfig, run_windows
from splitlm.curate.verify import structure_problems, verify_run
from splitlm.curate.windows import WindowsConfig
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tokens import TokenArray, TokenWriter, finish
from splitlm.train.data import ShuffledStream

TINY = 0.0005  # MB: one group per input file, 8 windows of 32 uint16 ids per token part


def test_parted_rows_index_like_one_array():
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 100, size=(23, 4))
    view = PartedRows([whole[:5], whole[5:6], whole[6:6], whole[6:23]])
    assert view.shape == whole.shape and len(view) == 23 and view.dtype == whole.dtype
    for key in (slice(0, 23), slice(3, 9), slice(4, 4), slice(-7, None), slice(1, 20, 3)):
        np.testing.assert_array_equal(view[key], whole[key])
    for i in (0, 4, 5, 6, 22, -1):
        np.testing.assert_array_equal(view[i], whole[i])
    index = rng.integers(0, 23, size=40)
    np.testing.assert_array_equal(view[index], whole[index])
    np.testing.assert_array_equal(view[whole[:, 0] > 50], whole[whole[:, 0] > 50])
    np.testing.assert_array_equal(view[:, :2], whole[:, :2])
    np.testing.assert_array_equal(np.asarray(view), whole)
    assert [r.tolist() for r in view] == whole.tolist() and view.max() == whole.max()
    with pytest.raises(IndexError):
        view[23]


def _write(folder, rows, per_part):
    writer = TokenWriter(folder, np.dtype("<u2"), rows.shape[1], per_part)
    for row in rows:
        writer.write(row)
    finish(folder, np.dtype("<u2"), rows.shape[1], writer.close())
    return TokenArray(folder)


def test_token_parts_read_as_one_array_and_one_part_is_tokens_bin(tmp_path):
    rows = np.arange(7 * 5, dtype=np.uint16).reshape(7, 5)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    parted, single = _write(tmp_path / "a", rows, 3), _write(tmp_path / "b", rows, 100)
    assert [p.name for p in parted.paths] == ["tokens-00000.bin", "tokens-00001.bin", "tokens-00002.bin"]
    assert [p.name for p in single.paths] == ["tokens.bin"] and "parts" not in json.loads(
        (tmp_path / "b" / "tokens.json").read_text())
    assert single.header.sha256 == hashlib.sha256(rows.tobytes()).hexdigest()
    for array in (parted, single):
        assert len(array) == 7 and array.seq_len == 4
        np.testing.assert_array_equal(array[2:6], rows[2:6])
        np.testing.assert_array_equal(array.tokens[[6, 0, 3]], rows[[6, 0, 3]])
    stream = ShuffledStream([parted], length=14, seed=1)  # the train side reads parts through one Dataset
    seen = sorted(tuple(stream[i]["input_ids"].tolist()) for i in range(7))
    assert seen == sorted(tuple(r) for r in rows.tolist())
    out = tmp_path / "export"
    out.mkdir()
    write_megatron(tmp_path / "a", "x", out)
    assert (out / "x.bin").read_bytes() == rows.tobytes()
    parts = {f"tokens-0000{i}.bin": hashlib.sha256((tmp_path / "a" / f"tokens-0000{i}.bin").read_bytes()).hexdigest()
             for i in range(3)}
    assert structure_problems(tmp_path / "a", parts) == []
    data = bytearray((tmp_path / "a" / "tokens-00001.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "a" / "tokens-00001.bin").write_bytes(bytes(data))
    parts["tokens-00001.bin"] = hashlib.sha256(bytes(data)).hexdigest()
    assert any("tokens-00001.bin: sha256 differs" in p for p in structure_problems(tmp_path / "a", parts))


TEXTS = [f"Doc {i}: " + "the quick brown fox jumps over a lazy dog, " * (2 + i % 5) + f"end {i}." for i in range(30)]


@pytest.fixture
def files(tmp_path):
    paths = []
    for f in range(3):
        path = tmp_path / f"in-{f}.jsonl"
        path.write_text("".join(json.dumps({"id": f"d{i}", "text": TEXTS[i]}) + "\n" for i in range(f * 10, f * 10 + 10)))
        paths.append(path)
    return paths


def _config(part_mb=TINY):
    return WindowsRunConfig(ingest=IngestConfig(part_mb=part_mb),
                            windows=WindowsConfig(seq_len=31, val_fraction=0.2, part_mb=part_mb))


def test_groups_pack_on_their_own_and_number_windows_globally(files, tmp_path):
    run = run_windows(files, tmp_path / "run", _config())
    whole = TokenArray(tmp_path / "run" / "windows")
    assert len(whole.paths) > 3 and len(whole) == run.windows
    expected, ids = [], []
    for f, path in enumerate(files):  # each file on its own, as one group packs
        alone = run_windows([path], tmp_path / f"alone-{f}", _config(part_mb=256))
        expected.append(np.asarray(TokenArray(tmp_path / f"alone-{f}" / "windows").tokens))
        assert alone.windows == len(expected[-1])
    np.testing.assert_array_equal(np.asarray(whole.tokens), np.concatenate(expected))
    for path in sorted((tmp_path / "run" / "windows").glob("windows-*.parquet")):
        ids += pq.read_table(path, columns=["window_id"]).column(0).to_pylist()
    assert ids == list(range(run.windows))
    assert run.tokens + run.tokens_dropped == run.tokens_in
    assert verify_run(tmp_path / "run").problems == []


def test_a_rerun_redoes_only_the_groups_that_did_not_finish(files, tmp_path, monkeypatch):
    real = stages.window_group

    def third_fails(doc_parts, duplicates, config, folder):
        if folder.name == "group-00002":
            raise KeyboardInterrupt("killed")
        return real(doc_parts, duplicates, config, folder)

    monkeypatch.setattr(stages, "window_group", third_fails)
    with pytest.raises(KeyboardInterrupt):
        run_windows(files, tmp_path / "run", _config())
    assert not (tmp_path / "run" / "windows").exists()
    monkeypatch.setattr(stages, "window_group", real)
    run_windows(files, tmp_path / "run", _config())
    tasks = StageManifest.read(tmp_path / "run" / "windows").counts["tasks"]
    assert [t["resumed"] for t in tasks] == [True, True, False]
    assert not (tmp_path / "run" / ".work" / "windows").exists()
    fresh = run_windows(files, tmp_path / "fresh", _config())
    again = StageManifest.read(tmp_path / "run" / "windows").parts
    assert again == StageManifest.read(tmp_path / "fresh" / "windows").parts and fresh.windows > 0


def _variant(words: list[str], rng, changes: int) -> list[str]:
    out = list(words)
    for i in rng.choice(len(out), size=changes, replace=False):
        out[i] = f"changed{rng.integers(1_000_000)}"
    return out


def test_grouped_dedup_finds_exactly_what_one_pass_finds(tmp_path):
    from splitlm.curate.dedup import DedupConfig, write_duplicates

    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(400)]
    texts = []
    for _ in range(6):
        base = list(rng.choice(vocab, size=200))
        near = _variant(base, rng, 3)
        texts += [base, near, _variant(near, rng, 3), list(base), list(rng.choice(vocab, size=200))]
    order = rng.permutation(len(texts))
    files = []
    for f in range(3):
        path = tmp_path / f"in-{f}.jsonl"
        path.write_text("".join(json.dumps({"id": f"d{i}", "text": " ".join(texts[i])}) + "\n"
                                for i in order[f * 10:(f + 1) * 10]))
        files.append(path)
    run_windows(files, tmp_path / "run", _config(part_mb=0.001))
    counts = StageManifest.read(tmp_path / "run" / "dedup").counts
    assert len(counts["tasks"]) == 3
    # the 6 unrelated documents share no band with any other: the replay never sees them
    assert counts["documents_replayed"] <= counts["documents_in"] - 6
    grouped = pq.read_table(sorted((tmp_path / "run" / "dedup").glob("duplicates-*.parquet"))).to_pylist()
    (tmp_path / "one").mkdir()
    write_duplicates(tmp_path / "run" / "documents", tmp_path / "one", DedupConfig())
    one_pass = pq.read_table(tmp_path / "one" / "duplicates-00000.parquet").to_pylist()
    assert grouped == one_pass and {r["kind"] for r in grouped} == {"exact", "near"}
