"""Card statistics that need no model: dedup removals traced to the kept document's cluster."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from splitlm.curate.cards.build import _dedup_removals
from tests.curate.test_shards import columns_of


def test_dedup_removals_count_per_cluster_even_when_the_last_cluster_is_empty():
    table = columns_of([["a", "b"], ["b", "c"], ["d"]], batch=1)  # b's first window is window 0
    labels = np.array([0, 1, 0])  # nothing in cluster 2 of K = 3
    duplicates = [pa.record_batch({"duplicate_of": ["b", "c"]}), pa.record_batch({"duplicate_of": ["c", "d", "gone"]})]
    assert _dedup_removals(table, labels, 3, duplicates).tolist() == [2, 2, 0]  # "gone" has no window


def test_document_codes_are_shared_by_equal_ids_and_missing_ids_are_minus_one():
    table = columns_of([["x", "y"], ["y"], ["z", "x"], ["w"]], batch=3)  # x comes back after y: still one code
    owner, codes = table.docs_of(np.arange(4))
    assert owner.tolist() == [0, 0, 1, 2, 2, 3] and table.n_docs == 4
    assert codes[0] == codes[4] and codes[1] == codes[2] and len(set(codes.tolist())) == 4
    found = table.codes_of(pa.array(["y", "nope", "w", ""]))
    assert found.tolist() == [codes[1], -1, codes[5], -1]
    assert table.distinct_docs(np.array([0, 1, 2])) == 3
