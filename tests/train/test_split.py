"""Split orchestration: token accounting, the losses table, SIGKILL + rerun, parallel branches, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from splitlm.cli.train_split import parse_tokens
from splitlm.core.errors import ConfigError
from splitlm.schemas.losses import LOSS_COLUMNS
from splitlm.train import evaluate, runner
from splitlm.train.budget import plan_budget, plan_jobs
from splitlm.train.split import SplitConfig, split

from .conftest import SPLIT_FLAGS

TRAIN_BIN = Path(sys.executable).parent / "train"


def test_budget_in_tokens_adds_up():
    budget = plan_budget(total_tokens=120 * 512, split_at=(0, 30 * 512, 90 * 512), k=6, tokens_per_step=512)
    assert (budget.total_steps, budget.split_steps, budget.branch_steps, budget.note) == (120, (0, 30, 90), (20, 15, 5), "")
    for s, b in zip(budget.split_steps, budget.branch_steps):
        assert budget.tokens(s) + 6 * budget.tokens(b) == 120 * 512  # D + K * D' = D_T


def test_budget_rounding_is_reported():
    budget = plan_budget(total_tokens=100 * 512 + 7, split_at=(1000,), k=3, tokens_per_step=512)
    assert budget.split_steps == (2,) and budget.branch_steps == (32,)
    assert "t_s 1,000 -> 1,024 (D_T 50,176)" in budget.note


@pytest.mark.parametrize("total, split_at", [(100, (0,)), (10 * 512, (9 * 512,))])
def test_impossible_budgets_are_user_errors(total, split_at):
    with pytest.raises(ConfigError):
        plan_budget(total_tokens=total, split_at=split_at, k=3, tokens_per_step=512)


def test_token_accounting_in_the_losses_table(split_train):
    rows = pq.read_table(split_train / "losses.parquet").to_pylist()
    d_total = max(r["pt_tokens"] for r in rows if r["split_at"] == -1)
    assert d_total == SPLIT_FLAGS["total_tokens"]
    for split_at in SPLIT_FLAGS["split_at"]:
        for k in range(3):
            cpt = max(r["cpt_tokens"] for r in rows if (r["split_at"], r["cluster"]) == (split_at, k))
            assert split_at + 3 * cpt == d_total


def test_losses_table_schema_and_meaning(split_train):
    table = pq.read_table(split_train / "losses.parquet")
    assert table.schema == evaluate.LOSSES
    assert pacsv.read_csv(split_train / "losses.csv").column_names == list(LOSS_COLUMNS)
    rows = table.to_pylist()
    keys = [(r["split_at"], r["cluster"], r["eval_cluster"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys))
    baseline = [r for r in rows if r["split_at"] == -1]
    assert baseline and all(r["cpt_tokens"] == 0 and r["cluster"] == r["eval_cluster"] for r in baseline)
    assert {r["pt_tokens"] for r in baseline} == {512 * s for s in (4, 8, 12, 16, 20, 24, 28, 30)}
    branch = [r for r in rows if r["split_at"] >= 0]
    assert all(r["pt_tokens"] == r["split_at"] and r["cpt_tokens"] > 0 for r in branch)
    assert {(r["split_at"], r["cluster"], r["eval_cluster"]) for r in branch} == {  # a branch: its own cluster
        (s, k, k) for s in (0, 3072) for k in range(3)
    }
    assert {r["size"] for r in rows} == {"tiny"} and len({r["n_params"] for r in rows}) == 1


def test_a_branch_from_step_zero_learns(split_train):
    rows = pq.read_table(split_train / "losses.parquet").to_pylist()
    for k in range(3):
        own = [r["eval_loss"] for r in rows if (r["split_at"], r["cluster"], r["eval_cluster"]) == (0, k, k)]
        assert len(own) == 3 and own[-1] < own[0] - 0.3, own


def test_compare_final_pairs_each_branch_with_the_baseline(split_train):
    pairs = evaluate.compare_final(evaluate.collect_losses(split_train))
    assert [(p["split_at"], p["cluster"]) for p in pairs] == [(s, k) for s in (0, 3072) for k in range(3)]
    assert all(p["baseline_tokens"] == p["split_total"] == 15360 for p in pairs)


def test_rerun_with_other_flags_is_refused(split_train, tiny_run):
    other = SplitConfig(run=tiny_run, size="tiny", **{**SPLIT_FLAGS, "total_tokens": 20 * 512})
    with pytest.raises(ConfigError, match="total_tokens"):
        split(other, split_train)


@pytest.mark.slow
def test_clusters_subset(tiny_run, tmp_path):
    cfg = SplitConfig(run=tiny_run, size="tiny", **SPLIT_FLAGS)
    _, _, branches = plan_jobs(cfg, tmp_path, clusters=(0, 2))
    assert [(b.split_at, b.branch_cluster) for b in branches] == [(0, 0), (0, 2), (3072, 0), (3072, 2)]
    with pytest.raises(ConfigError, match="--clusters"):
        plan_jobs(cfg, tmp_path, clusters=(5,))


def test_parse_tokens():
    assert [parse_tokens(t, "--x") for t in ("250000", "250k", "1.5M", "2e6", "1B")] == [
        250_000, 250_000, 1_500_000, 2_000_000, 10**9,
    ]  # fmt: skip
    for bad in ("lots", "1.5", "-3k"):
        with pytest.raises(ConfigError, match="--x"):
            parse_tokens(bad, "--x")


def _kill_when(cmd: list[str], pattern: str, out: Path) -> None:
    """Start `cmd`, SIGKILL it once a complete checkpoint matches `pattern` under `out`."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while not list(out.glob(pattern)):
        assert proc.poll() is None, f"finished before a checkpoint matched {pattern}: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkill_in_pretraining_and_in_a_branch_then_rerun(tiny_run, split_train, tmp_path):
    out = tmp_path / "train"
    cmd = [
        str(TRAIN_BIN), "split", str(tiny_run), "--out", str(out), "--size", "tiny",
        "--total-tokens", str(SPLIT_FLAGS["total_tokens"]), "--split-at", "0,3072", "--batch-size", "4",
        "--eval-every", "2048", "--eval-windows", "8", "--threads", "1",
    ]  # fmt: skip
    _kill_when(cmd, "pretrain/trainer/checkpoint-8/trainer_state.json", out)
    _kill_when(cmd, "branches/*/*/trainer/checkpoint-*/trainer_state.json", out)
    done = subprocess.run(cmd + ["--parallel", "2"], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "baseline" in done.stdout and "split at" in done.stdout

    results = [runner.JobResult(**json.loads(p.read_text())) for p in out.rglob("done.json")]
    assert len(results) == 7
    pretrain = next(r for r in results if r.name == "pretrain")
    assert pretrain.resumed_from >= 8  # it continued, it did not start over
    assert any(r.resumed_from > 0 for r in results if r.name != "pretrain")
    rows = pq.read_table(out / "losses.parquet").to_pylist()
    expected = pq.read_table(split_train / "losses.parquet").to_pylist()
    # No duplicated or missing evaluations, and the same numbers as the uninterrupted run: the
    # Trainer restores optimizer, scheduler and RNG, and the data order depends only on the seed.
    assert rows == expected


def test_cli_error_is_one_line(tiny_run, tmp_path):
    cmd = [str(TRAIN_BIN), "split", str(tiny_run), "--out", str(tmp_path / "t"), "--total-tokens", "5k", "--split-at", "9k"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: --split-at 9000") and proc.stderr.count("\n") == 1
