"""The dedup shuffle: band keys in partition files, reduced to the documents that share a band or an exact key."""

import numpy as np
from datasketch import MinHashLSH

from splitlm.curate.engine.bands import GROUP_SHIFT, band_keys, exact_keys, shared_documents, write_band_keys

RANGES = list(MinHashLSH(threshold=0.8, num_perm=128).hashranges)


def _brute_force(sigs, keys) -> set[int]:
    """Documents that share an exact key or one band's values with another document."""
    out = set()
    n = len(sigs)
    for i in range(n):
        for j in range(i + 1, n):
            same = keys[i] == keys[j] or any((sigs[i, lo:hi] == sigs[j, lo:hi]).all() for lo, hi in RANGES)
            if same:
                out |= {i, j}
    return out


def test_shared_documents_are_exactly_those_sharing_a_band_or_key(tmp_path):
    rng = np.random.default_rng(3)
    n = 120
    sigs = rng.integers(0, 2**32, size=(n, 128), dtype=np.uint64).astype(np.uint32)
    keys = [rng.bytes(32) for _ in range(n)]
    for _ in range(25):  # plant shared bands and exact keys between random pairs, across groups
        i, j = rng.choice(n, 2, replace=False)
        lo, hi = RANGES[rng.integers(len(RANGES))]
        sigs[j, lo:hi] = sigs[i, lo:hi]
    for _ in range(5):
        i, j = rng.choice(n, 2, replace=False)
        keys[j] = keys[i]
    sigs[7, :] = sigs[8, :]  # two documents with the same signature share every band
    groups = [(0, 50), (50, 90), (90, n)]
    folders = []
    for g, (lo, hi) in enumerate(groups):
        folder = tmp_path / f"g{g}"
        folder.mkdir()
        write_band_keys(folder, exact_keys(keys[lo:hi]), band_keys(sigs[lo:hi], RANGES), partitions=4)
        folders.append(str(folder))
    found = np.unique(np.concatenate([shared_documents(folders, p) for p in range(4)]))
    as_rows = set()
    for doc in found:
        g, row = int(doc) >> GROUP_SHIFT, int(doc) & ((1 << GROUP_SHIFT) - 1)
        as_rows.add(groups[g][0] + row)
    want = _brute_force(sigs, keys)
    assert len(want) > 10 and as_rows == want


def test_band_keys_differ_across_bands_for_equal_values():
    sigs = np.zeros((1, 128), np.uint32)  # every band holds the same values: the band index must tell them apart
    keys = band_keys(sigs, RANGES)[0]
    assert len(set(keys.tolist())) == len(RANGES)
