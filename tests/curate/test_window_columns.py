"""The columnar window table and the array holdout, against the per-window list rules they replace."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.curate import holdout
from splitlm.curate.rows import SlicedRows, row_chunks, take_rows
from splitlm.curate.window_columns import build_window_columns, first_windows, read_window_columns
from tests.curate.test_shards import SPEC, columns_of, write_run

SCHEMA = pa.schema([("window_id", pa.int64()), ("split", pa.string()), ("domain", pa.string()),
                    ("pieces", pa.list_(pa.string()))])


def test_columns_of_a_hand_built_run(tmp_path):
    run = write_run(tmp_path / "run")
    table = read_window_columns(run, batch_size=4)  # batches cut through documents
    assert len(table) == len(SPEC)
    assert table.is_val_N.tolist() == [split == "val" for split, _, _ in SPEC]
    assert table.domains == ["dom0"]  # cluster 1's windows are unlabelled, cluster 2 has none
    assert table.domain_labels(np.arange(len(SPEC))) == [None if c == 1 else "dom0" for _, c, _ in SPEC]
    owner, codes = table.docs_of(np.arange(len(SPEC)))
    names = [d for _, _, docs in SPEC for d in docs]
    assert owner.tolist() == [w for w, (_, _, docs) in enumerate(SPEC) for _ in docs]
    assert table.codes_of(pa.array(names)).tolist() == codes.tolist()  # one code per id, wherever it recurs
    assert table.n_docs == len(set(names))
    first = first_windows(table)
    for name in set(names):
        assert first[table.codes_of(pa.array([name]))[0]] == min(w for w, (_, _, d) in enumerate(SPEC) if name in d)


def test_window_ids_out_of_order_and_empty_windows_are_schema_errors():
    rows = [dict(window_id=1, split="train", domain=None, pieces=["a"])]
    with pytest.raises(SchemaError, match="not 0..N-1"):
        build_window_columns([pa.RecordBatch.from_pylist(rows, schema=SCHEMA)])
    rows = [dict(window_id=0, split="train", domain=None, pieces=[])]
    with pytest.raises(SchemaError, match="holds no piece"):
        build_window_columns([pa.RecordBatch.from_pylist(rows, schema=SCHEMA)])


# --- the list rules before columns (reference) ----------------------------------------------------


def ref_cap(val_W, doc_ids, most):
    docs: set[str] = set()
    for i, w in enumerate(val_W):
        new = set(doc_ids[w]) - docs
        if len(docs) + len(new) > most:
            return list(val_W[:i]), list(val_W[i:])
        docs |= new
    return list(val_W), []


def ref_top_up(train, val, doc_ids, minimum):
    short = [c for c in sorted(val) if len(val[c]) < minimum]
    if not short:
        return {"moved": {}, "dropped": 0}
    holders = defaultdict(list)
    for ids in train.values():
        for w in ids:
            for d in doc_ids[w]:
                holders[d].append(w)
    removed, moved, dropped = set(), {}, 0
    for c in short:
        need = minimum - len(val[c])

        def sharers(w):
            return len({x for d in doc_ids[w] for x in holders[d]}) - 1

        picked, taken = [], set()
        for w in sorted((w for w in train[c] if w not in removed), key=lambda w: (sharers(w), w)):
            if len(picked) == need:
                break
            if w not in taken:
                picked.append(w)
                taken.update(x for d in doc_ids[w] for x in holders[d])
        for w in picked:
            removed.add(w)
            for d in doc_ids[w]:
                more = [x for x in holders[d] if x not in removed]
                removed.update(more)
                dropped += len(more)
        if len(picked) < need or sum(1 for w in train[c] if w not in removed) < 1:
            raise ConfigError("too small")
        val[c] = sorted(val[c] + picked)
        moved[str(c)] = len(picked)
    for c in train:
        train[c] = [w for w in train[c] if w not in removed]
    return {"moved": moved, "dropped": dropped}


def random_windows(rng, n):
    """Windows of 1-3 documents from a small pool: documents recur anywhere, not only in neighbours."""
    pool = [f"d{i}" for i in range(max(2, n // 2))]
    return [list(dict.fromkeys(rng.choice(pool, size=rng.integers(1, 4)).tolist())) for _ in range(n)]


@pytest.mark.parametrize("seed", range(40))
def test_array_holdout_matches_the_list_rules(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(4, 40)), int(rng.integers(1, 4))
    doc_ids = random_windows(rng, n)
    table = columns_of(doc_ids, batch=int(rng.integers(1, 7)))
    ids = np.sort(rng.choice(n, size=int(rng.integers(0, n + 1)), replace=False)).astype(np.int64)
    most = int(rng.integers(1, 6))
    kept, over = holdout.cap(ids, table, most)
    assert (kept.tolist(), over.tolist()) == ref_cap(ids.tolist(), doc_ids, most)
    assert table.distinct_docs(ids) == len({d for w in ids for d in doc_ids[w]})
    clusters = rng.integers(0, k, n)
    is_val = rng.random(n) < 0.3
    train = {c: np.flatnonzero((clusters == c) & ~is_val).astype(np.int64) for c in range(k)}
    val = {c: np.flatnonzero((clusters == c) & is_val).astype(np.int64) for c in range(k)}
    ref_train = {c: v.tolist() for c, v in train.items()}
    ref_val = {c: v.tolist() for c, v in val.items()}
    minimum = int(rng.integers(0, 4))
    try:
        want = ref_top_up(ref_train, ref_val, doc_ids, minimum)
    except ConfigError:
        with pytest.raises(ConfigError, match="--val-min-windows"):
            holdout.top_up(train, val, table, minimum, {c: f"c{c}" for c in range(k)})
        return
    assert holdout.top_up(train, val, table, minimum, {c: f"c{c}" for c in range(k)}) == want
    assert {c: v.tolist() for c, v in train.items()} == ref_train
    assert {c: v.tolist() for c, v in val.items()} == ref_val


def test_bounded_row_reads_match_plain_indexing(tmp_path):
    data = np.arange(30_000 * 3, dtype=np.float32).reshape(30_000, 3)
    np.save(tmp_path / "x.npy", data)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert np.array_equal(np.concatenate([rows for _, rows in row_chunks(mapped, 977)]), data)
    assert [lo for lo, _ in row_chunks(mapped, 10_000, 5, 25_000)] == [5, 10_005, 20_005]
    ids = np.random.default_rng(0).integers(0, 30_000, 3000)  # unsorted, with repeats
    assert np.array_equal(take_rows(mapped, ids), data[ids])
    sliced = SlicedRows(mapped)
    assert (sliced.shape, sliced.ndim, len(sliced)) == ((30_000, 3), 2, 30_000)
    assert np.array_equal(sliced[np.sort(ids)], data[np.sort(ids)]) and np.array_equal(sliced[7:9], data[7:9])
