"""The phonebook sweep end to end on a toy size, through the real HF Trainer (`runner.train`)."""

import csv
import json
from dataclasses import replace

import pytest

from splitlm.core.errors import ConfigError
from splitlm.train.phonebook import plot
from splitlm.train.phonebook.config import PhonebookConfig
from splitlm.train.phonebook.sweep import sweep

pytestmark = pytest.mark.slow

CFG = PhonebookConfig(
    facts=12,
    size="phonebook-cpu",
    batch_size=4,
    total_steps=9,
    warmup_steps=2,
    fractions=(0.0, 0.5, 1.0),
    alphas=(0.0,),
    seed=4,
)


def _run(out):
    rows = sweep(CFG, out, parallel=1)
    plot.write_csv(out / "phonebook.csv", rows)
    plot.write_plot(out / "phonebook.png", rows, "toy")
    return rows


def test_one_pretraining_run_serves_every_fraction_and_reruns_reuse_it(tmp_path):
    rows = _run(tmp_path / "a")
    with open(tmp_path / "a" / "phonebook.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["alpha", "budget", "pt_fraction", "accuracy"]
    assert [(r["alpha"], r["pt_fraction"]) for r in table] == [
        (a, f) for a in ("0",) for f in ("0", "0.5", "1")
    ]
    assert (
        all(0 <= r["accuracy"] <= 1 for r in rows) and (tmp_path / "a" / "phonebook.png").stat().st_size > 0
    )
    train = tmp_path / "a" / "alpha-0" / "train"
    pretrain = json.loads((train / "pretrain" / "done.json").read_text())
    assert pretrain["steps"] == 9  # T; the split at 0.5 is round(4.5) = 4 steps, each branch (9 - 4) // 2
    branch_steps = {
        p.parent.parent.name: json.loads(p.read_text())["steps"] for p in train.glob("branches/*/*/done.json")
    }
    assert branch_steps == {"split-000000000000": 4, f"split-{4 * 4 * 29:012d}": 2}
    assert sorted(p.name for p in (train / "pretrain" / "exports").iterdir()) == [
        "tokens-000000000000",
        f"tokens-{4 * 4 * 29:012d}",
    ]
    plan = json.loads((train / "plan.json").read_text())  # the same job plan `train split` writes and runs
    assert [j["id"] for j in plan["jobs"]] == [
        "pretrain", *(f"split-{t:012d}/cluster-{c:02d}" for t in (0, 4 * 4 * 29) for c in (0, 1))
    ]
    # A rerun reuses every finished job (its done.json) and writes the same bytes.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("a/alpha-*/train/**/done.json")}
    first = (tmp_path / "a" / "phonebook.csv").read_bytes()
    _run(tmp_path / "a")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (tmp_path / "a" / "phonebook.csv").read_bytes() == first
    # Same seed in a fresh folder: the same bytes; another config in the same folder: refused.
    _run(tmp_path / "b")
    assert (tmp_path / "b" / "phonebook.csv").read_bytes() == first
    with pytest.raises(ConfigError, match="phonebook.json"):
        sweep(replace(CFG, seed=5), tmp_path / "a")
