"""Card statistics that need no model: dedup removals traced to the kept document's cluster."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from splitlm.curate.cards.build import _dedup_removals


def test_dedup_removals_count_per_cluster_even_when_the_last_cluster_is_empty():
    meta = {"doc_ids": [["a", "b"], ["b", "c"], ["d"]]}  # b's first window is window 0
    labels = np.array([0, 1, 0])  # nothing in cluster 2 of K = 3
    duplicates = pa.table({"duplicate_of": ["b", "c", "c", "d", "gone"]})  # "gone" has no window
    assert _dedup_removals(meta, labels, 3, duplicates).tolist() == [2, 2, 0]
