"""Dedup: exact after whitespace normalisation, near duplicates by MinHash, first occurrence kept."""

from __future__ import annotations

import random

from splitlm.curate.dedup import DedupConfig, Deduplicator


def _words(seed: int, n: int = 200) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa",
                        "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon"])
            + str(rng.randrange(50)) for _ in range(n)]


def test_exact_near_and_distinct():
    base = _words(1)
    near = list(base)
    near[100] = "changed"  # one word in 200: Jaccard of 5-gram sets ~0.95
    far = list(base)
    for i in range(0, 200, 4):
        far[i] = f"other{i}"  # every fourth word: almost no 5-gram survives
    dedup = Deduplicator(DedupConfig())
    assert dedup.check("a", " ".join(base)) is None
    assert dedup.check("b", "  \n".join(base) + "\t") == ("exact", "a")
    assert dedup.check("c", " ".join(near)) == ("near", "a")
    assert dedup.check("d", " ".join(far)) is None
    assert dedup.check("e", " ".join(_words(2))) is None


def test_near_pass_can_be_turned_off_and_threshold_matters():
    base = _words(3)
    edited = list(base)
    for i in range(0, 200, 25):
        edited[i] = "x"  # 8 edits: Jaccard ~0.7
    strict = Deduplicator(DedupConfig(threshold=0.9))
    strict.check("a", " ".join(base))
    assert strict.check("b", " ".join(edited)) is None
    loose = Deduplicator(DedupConfig(threshold=0.5))
    loose.check("a", " ".join(base))
    assert loose.check("b", " ".join(edited)) == ("near", "a")
    exact_only = Deduplicator(DedupConfig(near=False))
    exact_only.check("a", " ".join(base))
    assert exact_only.check("b", " ".join(edited)) is None


def test_long_documents_stream_to_the_same_verdicts():
    """Documents many blocks long (hashed and shingled block by block) are found like short ones."""
    words = _words(4, 60_000)  # ~420k characters, several word blocks and hundreds of shingle batches
    near = list(words)
    for i in range(0, len(near), 500):
        near[i] = "changed"  # 1 word in 500: Jaccard of 5-gram sets ~0.98
    dedup = Deduplicator(DedupConfig())
    assert dedup.check("long", " ".join(words)) is None
    assert dedup.check("spaced", "\n".join(words) + "  ") == ("exact", "long")
    assert dedup.check("edited", " ".join(near)) == ("near", "long")
    assert dedup.check("other", " ".join(_words(5, 60_000))) is None
