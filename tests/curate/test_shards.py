"""Shards: each cluster's validation set is capped at `val_max_docs` documents; capped-off windows
move to training unless they share a document with a kept validation window (then dropped, counted).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.curate.holdout import cap as _cap_validation
from splitlm.curate.shards import ShardsConfig, write_shards
from splitlm.curate.window_columns import WindowColumns, build_window_columns
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.router import EmbedderSpec, RouterSpec
from splitlm.schemas.tables import ASSIGNMENTS, SHARD_INDEX, WINDOWS
from splitlm.schemas.tokens import TokenArray, write_header

# --- _cap_validation ---------------------------------------------------------------------------


def columns_of(doc_ids: list[list[str]], split: list[str] | None = None, batch: int = 2) -> WindowColumns:
    """The columnar window table of hand-given documents per window, built from small batches."""
    split = split or ["val"] * len(doc_ids)
    rows = [dict(window_id=w, split=s, domain=None, pieces=d) for w, (s, d) in enumerate(zip(split, doc_ids))]
    schema = pa.schema([("window_id", pa.int64()), ("split", pa.string()), ("domain", pa.string()),
                        ("pieces", pa.list_(pa.string()))])
    return build_window_columns(pa.RecordBatch.from_pylist(rows[i : i + batch], schema=schema)
                                for i in range(0, len(rows), batch))


def _cap(doc_ids: list[list[str]], cap: int, val_W=None):
    val_W = np.arange(len(doc_ids), dtype=np.int64) if val_W is None else np.asarray(val_W, dtype=np.int64)
    kept, overflow = _cap_validation(val_W, columns_of(doc_ids), cap)
    assert np.array_equal(np.concatenate([kept, overflow]), val_W)  # a split of the input, order kept
    return kept.tolist(), overflow.tolist()


def test_everything_fits_under_the_cap():
    assert _cap([["a"], ["b"], ["a", "b"]], cap=2) == ([0, 1, 2], [])
    assert _cap([], cap=1) == ([], [])


def test_documents_are_counted_once_however_many_windows_hold_them():
    # One long document over four windows, then a second one: two documents in all.
    assert _cap([["a"], ["a"], ["a", "b"], ["b"], ["b"]], cap=2) == ([0, 1, 2, 3, 4], [])


def test_the_cap_stops_at_the_first_window_that_would_exceed_it():
    doc_ids = [["a"], ["b"], ["b", "c"], ["c"], ["a"]]
    assert _cap(doc_ids, cap=2) == ([0, 1], [2, 3, 4])
    # Windows after the first overflow overflow too, even when their documents are already kept.
    assert _cap(doc_ids, cap=3) == ([0, 1, 2, 3, 4], [])


def test_a_first_window_over_the_cap_keeps_nothing():
    assert _cap([["a", "b"], ["c"]], cap=1) == ([], [0, 1])


def test_only_the_given_windows_are_looked_at():
    # val_W indexes into the doc ids of every window of the run (train windows included).
    doc_ids = [["t1"], ["a"], ["t2"], ["b"], ["c"]]
    assert _cap(doc_ids, cap=2, val_W=[1, 3, 4]) == ([1, 3], [4])


def test_val_max_docs_must_be_positive():
    with pytest.raises(ConfigError, match="--val-max-docs"):
        ShardsConfig(val_max_docs=0)


# --- write_shards end to end on a hand-built RUN -------------------------------------------------

K, WIDTH = 3, 5  # cluster 2 gets no window at all
# (split, cluster, documents); the row number is the window id. With val_max_docs=2:
SPEC = [
    ("train", 0, ["a"]),  # 0
    ("val", 1, ["u1"]),  # 1  c1 val: {u1}
    ("val", 0, ["v1"]),  # 2  c0 val: {v1}
    ("val", 0, ["v1", "v2"]),  # 3  c0 val: {v1, v2}
    ("train", 1, ["c"]),  # 4
    ("val", 1, ["u1"]),  # 5  c1 val, no new document
    ("train", 0, ["a", "b"]),  # 6
    ("val", 0, ["v2"]),  # 7  c0 val, no new document
    ("val", 1, ["u2"]),  # 8  c1 val: {u1, u2}
    ("val", 0, ["v2", "v3"]),  # 9  c0 overflow; shares v2 with kept val -> dropped
    ("val", 1, ["u3"]),  # 10 c1 overflow -> train
    ("val", 0, ["v3"]),  # 11 c0 overflow; v3 was never kept -> train
    ("val", 1, ["u1"]),  # 12 c1 overflow (after the cap broke); u1 is kept -> dropped
    ("val", 0, ["v4"]),  # 13 c0 overflow -> train
    ("val", 1, ["v1"]),  # 14 c1 overflow; v1 is kept as val in cluster 0 -> dropped
]
EXPECTED = {  # cluster -> (train windows, val windows)
    0: ([0, 6, 11, 13], [2, 3, 7]),
    1: ([4, 10], [1, 5, 8]),
    2: ([], []),
}


def _tokens(n: int) -> np.ndarray:
    return (np.arange(n * WIDTH).reshape(n, WIDTH) + 100).astype("<u2")


def _pieces(docs: list[str]) -> list[dict]:
    per = WIDTH // len(docs)
    return [dict(doc_id=d, source="corpus.jsonl", offset=i * per, token_start=0, token_end=per,
                 char_start=0, char_end=4 * per) for i, d in enumerate(docs)]


def write_run(root, spec=SPEC, k=K):
    """A RUN folder with windows/, clusters/assignments + router.json, following the contracts."""
    windows, clusters = root / "windows", root / "clusters"
    windows.mkdir(parents=True)
    clusters.mkdir()
    data = _tokens(len(spec)).tobytes()
    (windows / "tokens.bin").write_bytes(data)
    write_header(windows, np.dtype("<u2"), len(spec), WIDTH, hashlib.sha256(data).hexdigest())
    rows = [dict(window_id=w, split=split, domain=None if c == 1 else f"dom{c}",
                 domain_mix=[] if c == 1 else [{"label": f"dom{c}", "tokens": WIDTH}], pieces=_pieces(docs))
            for w, (split, c, docs) in enumerate(spec)]
    pq.write_table(pa.Table.from_pylist(rows, schema=WINDOWS), windows / "windows-00000.parquet")
    assign = [dict(window_id=w, cluster=c, distance=0.5) for w, (_, c, _) in enumerate(spec)]
    pq.write_table(pa.Table.from_pylist(assign, schema=ASSIGNMENTS), clusters / "assignments-00000.parquet")
    embedder = EmbedderSpec(model_id="m", weights_sha256="0", mode="truncate", precision="fp32", max_pieces=256,
                            dimension=4, pooling="mean", normalized=True)
    spec_json = RouterSpec(k=k, embedder=embedder, tokenizer="gpt2", tokenizer_sha256="0", prefix_tokens=32,
                           corpus_fingerprint="0").to_json()
    RunLayout(root).router_spec.write_text(spec_json)
    return root


@pytest.fixture
def shards(tmp_path):
    run = write_run(tmp_path / "run")
    advanced = []
    counts = write_shards(run, run / "shards", ShardsConfig(val_max_docs=2, val_min_windows=0, copy_rows=2), advanced.append)
    return run, counts, advanced


def _index(run, cluster: int, split: str) -> list[dict]:
    folder = run / "shards" / cluster_name(cluster, K) / split
    table = pq.read_table(folder / "index.parquet")
    assert table.schema.equals(SHARD_INDEX, check_metadata=False)
    return table.to_pylist()


def test_overflow_moves_to_train_or_is_dropped(shards):
    run, counts, _ = shards
    assert counts["k"] == K
    assert (counts["val_overflow_to_train"], counts["val_overflow_dropped"]) == (3, 3)  # 10, 11, 13 / 9, 12, 14
    for c, (train, val) in EXPECTED.items():
        assert [r["window_id"] for r in _index(run, c, "train")] == train, c
        assert [r["window_id"] for r in _index(run, c, "val")] == val, c
        assert counts["clusters"][str(c)] == {
            "train_windows": len(train), "val_windows": len(val), "val_documents": 2 if val else 0,
            "train_tokens": len(train) * WIDTH, "val_tokens": len(val) * WIDTH,
        }  # fmt: skip


def test_every_window_is_accounted_for(shards):
    _, counts, advanced = shards
    assert counts["windows"] == 12
    assert counts["windows"] + counts["val_overflow_dropped"] == len(SPEC)
    assert sum(advanced) == counts["windows"] and len(advanced) == K


def test_no_validation_document_is_in_any_train_shard(shards):
    run, _, _ = shards
    val_docs = {d for c in range(K) for r in _index(run, c, "val") for d in r["doc_ids"]}
    train_docs = {d for c in range(K) for r in _index(run, c, "train") for d in r["doc_ids"]}
    assert val_docs == {"v1", "v2", "u1", "u2"}
    assert not val_docs & train_docs
    assert train_docs == {"a", "b", "c", "u3", "v3", "v4"}


def test_shards_hold_the_windows_tokens_and_metadata(shards):
    run, _, _ = shards
    source = TokenArray(run / "windows").tokens
    for c in range(K):
        for split in ("train", "val"):
            folder = RunLayout(run).shard(c, K, split)
            array = TokenArray(folder)
            index = _index(run, c, split)
            ids = [r["window_id"] for r in index]
            assert len(array) == len(ids) and array.tokens.shape == (len(ids), WIDTH)
            assert np.array_equal(np.asarray(array.tokens), source[ids])
            assert array.header.sha256 == hashlib.sha256((folder / "tokens.bin").read_bytes()).hexdigest()
            assert [r["doc_ids"] for r in index] == [SPEC[w][2] for w in ids]
            assert [r["domain"] for r in index] == [None if c == 1 else f"dom{c}" for _ in ids]


def test_a_generous_cap_keeps_every_validation_window(tmp_path):
    run = write_run(tmp_path / "run")
    counts = write_shards(run, run / "shards", ShardsConfig(val_max_docs=100, val_min_windows=0))
    assert (counts["val_overflow_to_train"], counts["val_overflow_dropped"]) == (0, 0)
    assert counts["windows"] == len(SPEC)
    for c in range(K):
        ids = [r["window_id"] for r in _index(run, c, "val")]
        assert ids == [w for w, (split, cl, _) in enumerate(SPEC) if split == "val" and cl == c]


def test_a_cap_of_one_document(tmp_path):
    spec = [("val", 0, ["x"]), ("val", 0, ["x", "y"]), ("val", 0, ["y"]), ("val", 0, ["z"]), ("train", 0, ["t"])]
    run = write_run(tmp_path / "run", spec, k=1)
    counts = write_shards(run, run / "shards", ShardsConfig(val_max_docs=1, val_min_windows=0))
    folder = run / "shards" / cluster_name(0, 1)
    val = pq.read_table(folder / "val" / "index.parquet").column("window_id").to_pylist()
    train = pq.read_table(folder / "train" / "index.parquet").column("window_id").to_pylist()
    assert (val, train) == ([0], [2, 3, 4])  # 1 shares x with the kept window: dropped; 2 and 3 train
    assert (counts["val_overflow_to_train"], counts["val_overflow_dropped"]) == (2, 1)
    assert counts["clusters"]["0"]["val_documents"] == 1


def test_a_window_no_cluster_takes_fails_the_accounting(tmp_path):
    # Assignments name cluster 3 while the router says K = 3: that window lands in no shard.
    spec = [(split, 3 if w == 4 else c, docs) for w, (split, c, docs) in enumerate(SPEC)]
    run = write_run(tmp_path / "run", spec)
    with pytest.raises(SchemaError, match="assignments.*1 window.*cluster 0-2"):
        write_shards(run, run / "shards", ShardsConfig(val_max_docs=2, val_min_windows=0))


def test_streaming_knobs_change_no_window(tmp_path, monkeypatch):
    # One cluster per pass, one-row chunks and index row groups, a tiny index buffer: same shards.
    import splitlm.curate.shards as shards_module

    def shard_files(root):
        out = {}
        for path in sorted((root / "shards").rglob("*")):
            if path.name == "index.parquet":
                out[str(path.relative_to(root))] = pq.read_table(path).to_pylist()
            elif path.is_file():
                out[str(path.relative_to(root))] = path.read_bytes()
        return out

    config = ShardsConfig(val_max_docs=2, val_min_windows=0)
    base = write_run(tmp_path / "a")
    counts = write_shards(base, base / "shards", config)
    for name, value in (("OPEN_CLUSTERS", 1), ("INDEX_GROUP_ROWS", 1), ("INDEX_BUFFER_ROWS", 2)):
        monkeypatch.setattr(shards_module, name, value)
    small = write_run(tmp_path / "b")
    assert write_shards(small, small / "shards", ShardsConfig(val_max_docs=2, val_min_windows=0, copy_rows=1)) == counts
    assert shard_files(small) == shard_files(base)


def test_an_interrupted_copy_resumes_from_its_finished_parts(tmp_path):
    import shutil

    from splitlm.curate.engine.run import Engine

    class CrashAfterFirstCopy(Engine):  # the local engine, killed once the token copy's first part finished
        def map(self, fn, items, done=lambda i, r: None):
            result = fn(*items[0])
            if fn.__name__ == "copy_part":
                raise KeyboardInterrupt("killed")
            return [result, *super().map(fn, items[1:])]

    config = ShardsConfig(val_max_docs=2, val_min_windows=0)
    run = write_run(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        write_shards(run, run / "shards", config, engine=CrashAfterFirstCopy())
    shutil.rmtree(run / "shards")  # the stage runner drops a failed stage's partial folder; the scratch stays
    counts = write_shards(run, run / "shards", config)
    assert [t["resumed"] for t in counts["tasks"]] == [True]
    fresh = write_run(tmp_path / "fresh")
    write_shards(fresh, fresh / "shards", config)
    same = [p.relative_to(run / "shards") for p in sorted((run / "shards").rglob("tokens.*"))]
    assert same and all((run / "shards" / p).read_bytes() == (fresh / "shards" / p).read_bytes() for p in same)
    assert not (run / ".work").exists()
