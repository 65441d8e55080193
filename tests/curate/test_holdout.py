"""The validation floor: every cluster gets `--val-min-windows`, no document straddles train and val."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from splitlm.core.errors import ConfigError
from splitlm.curate.holdout import top_up
from splitlm.curate.shards import ShardsConfig, write_shards
from splitlm.schemas.layout import cluster_name
from tests.curate.test_shards import columns_of, write_run

NAMES = {0: "cluster-0", 1: "cluster-1"}


def _arr(*ids):
    return np.array(ids, dtype=np.int64)


def test_isolated_windows_move_first_and_sharers_are_dropped():
    # Window 1 shares document "b" with window 2 (cluster 1); windows 3 and 4 share nothing.
    docs = [["v"], ["a", "b"], ["b"], ["c"], ["d"], ["e"], ["f"]]
    train = {0: _arr(1, 3, 4, 5), 1: _arr(2, 6)}
    val = {0: _arr(), 1: _arr(0)}
    out = top_up(train, val, columns_of(docs), 2, NAMES)
    assert out == {"moved": {"0": 2, "1": 1}, "dropped": 0}
    assert val[0].tolist() == [3, 4]  # isolated, lowest ids first; 1 would cost window 2
    assert val[1].tolist() == [0, 6] and train[1].tolist() == [2] and train[0].tolist() == [1, 5]


def test_a_window_sharing_documents_drops_its_sharers():
    # Cluster 0 needs 2: window 3 is isolated, then 7 (shares "a" with 1 only) beats 1 and 5 (share "b").
    docs = [["x"], ["a", "b"], ["b"], ["c"], ["y"], ["b"], ["z"], ["a"]]
    train, val = {0: _arr(1, 3, 5, 7), 1: _arr(2, 4, 6)}, {0: _arr(), 1: _arr(0)}
    out = top_up(train, val, columns_of(docs), 2, NAMES)
    assert out == {"moved": {"0": 2, "1": 1}, "dropped": 1}  # window 1 held "a": never trained on
    assert (val[0].tolist(), train[0].tolist()) == ([3, 7], [5])
    assert (val[1].tolist(), train[1].tolist()) == ([0, 4], [2, 6])
    val_docs = {d for ids in val.values() for w in ids for d in docs[w]}
    assert not val_docs & {d for ids in train.values() for w in ids for d in docs[w]}


def test_a_cluster_that_cannot_keep_a_training_window_is_refused():
    docs = [["a"], ["a", "b"], ["b"], ["c"]]
    train, val = {0: _arr(0, 1, 3), 1: _arr(2)}, {0: _arr(), 1: _arr()}
    with pytest.raises(ConfigError, match="c0 holds 0 validation and 3 training windows.*--val-min-windows 2"):
        top_up(train, val, columns_of(docs), 2, {0: "c0", 1: "c1"})  # moving 3 and 0 drops 1: nothing left to train


def test_nothing_moves_when_every_cluster_has_enough():
    train, val = {0: _arr(1, 2)}, {0: _arr(0)}
    assert top_up(train, val, columns_of([["a"], ["b"], ["c"]]), 1, NAMES) == {"moved": {}, "dropped": 0}
    assert train[0].tolist() == [1, 2]


def test_shards_guarantee_the_floor_and_record_it(tmp_path):
    # Cluster 0 has no validation window at all; the floor moves two of its training windows.
    spec = [("train", 0, [f"t{w}"]) for w in range(6)] + [("val", 1, ["v1"]), ("val", 1, ["v2"]),
                                                           ("train", 1, ["t9"])]
    run = write_run(tmp_path / "run", spec, k=2)
    counts = write_shards(run, run / "shards", ShardsConfig(val_min_windows=2))
    assert counts["val_topped_up"] == {"0": 2} and counts["val_topup_dropped"] == 0
    assert counts["clusters"]["0"]["val_windows"] == 2 and counts["clusters"]["0"]["train_windows"] == 4
    val = pq.read_table(run / "shards" / cluster_name(0, 2) / "val" / "index.parquet")
    assert val.column("window_id").to_pylist() == [0, 1]


def test_a_cluster_too_small_is_refused_at_curation(tmp_path):
    spec = [("train", 0, ["a"]), ("train", 0, ["b"]), ("val", 1, ["c"]), ("train", 1, ["d"])]
    run = write_run(tmp_path / "run", spec, k=2)
    with pytest.raises(ConfigError, match=f"{cluster_name(0, 2)} holds 0 validation and 2 training"):
        write_shards(run, run / "shards", ShardsConfig(val_min_windows=2))
