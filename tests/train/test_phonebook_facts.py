"""Phonebook facts: the overlap, distinct names, the seed, and a run folder the training code reads."""

import numpy as np
import pytest

from splitlm.core.errors import ConfigError
from splitlm.train.data import open_shard, read_run
from splitlm.train.phonebook import facts as F
from splitlm.train.phonebook.config import PhonebookConfig, preset


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_clusters_share_alpha_of_their_facts_and_names_are_distinct(alpha):
    c0, c1 = F.make_facts(40, alpha, seed=3)
    assert c0.shape == c1.shape == (40, F.WIDTH)
    shared = {r.tobytes() for r in c0} & {r.tobytes() for r in c1}
    assert len(shared) == round(alpha * 40)
    names = {r[1 : F.PROMPT - 1].tobytes() for r in np.concatenate([c0, c1])}
    assert len(names) == 80 - len(shared)  # one number per name
    text = F.decode(c0[0])
    assert (
        text[0] == "\n"
        and text[7] == "|"
        and text[1:7].isalpha()
        and text[8:].isdigit()
        and len(text[8:]) == 22
    )


def test_the_seed_fixes_the_facts():
    a, b, c = F.make_facts(30, 0.5, 1), F.make_facts(30, 0.5, 1), F.make_facts(30, 0.5, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_written_run_opens_as_a_curated_run(tmp_path):
    clusters = F.make_facts(25, 0.0, 0)
    F.write_run(tmp_path / "run", clusters, seed=0)
    info = read_run(tmp_path / "run")
    assert (info.k, info.seq_len, info.vocab_size, info.windows) == (2, F.WIDTH - 1, len(F.VOCAB), 50)
    for k in range(2):
        for split in ("train", "val"):
            assert np.array_equal(np.asarray(open_shard(tmp_path / "run", k, split, info)[:]), clusters[k])


@pytest.mark.parametrize(
    "change, flag",
    [
        ({"fractions": (0.2, 1.0)}, "--fractions"),
        ({"fractions": (0.0, 1.5, 1.0)}, "--fractions"),
        ({"alphas": (2.0,)}, "--alphas"),
        ({"facts": 0}, "--facts"),
    ],
)
def test_bad_settings_are_refused_with_the_flag(change, flag):
    from dataclasses import asdict

    with pytest.raises(ConfigError, match=flag):
        PhonebookConfig(**{**asdict(preset("cpu", "limited")), **change})
    with pytest.raises(ConfigError, match="--budget"):
        preset("cpu", "huge")
