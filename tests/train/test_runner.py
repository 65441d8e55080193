"""The one training function: loss falls, branches start alike with a fresh optimizer, rows and files."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from splitlm.core.errors import ConfigError
from splitlm.schemas.losses import LOSS_COLUMNS
from splitlm.train import models, runner
from splitlm.train.budget import plan_jobs
from splitlm.train.config import SplitConfig
from splitlm.train.data import EvalWindows, ShuffledStream, open_shard, read_run

from .conftest import SPLIT_FLAGS


def _done(folder: Path) -> dict:
    return json.loads((folder / "done.json").read_text())


def _own_losses(folder: Path, cluster: int) -> list[float]:
    return [r["eval_loss"] for r in runner.read_rows(folder / "losses.jsonl") if r["eval_cluster"] == cluster]


def test_pretraining_loss_falls_on_every_cluster(split_train):
    for k in range(3):
        losses = _own_losses(split_train / "pretrain", k)
        assert len(losses) == 30 // 4 + 1  # every 4 steps, and the last
        assert losses[-1] < losses[0] - 0.3, (k, losses)  # from ~ln(2048) = 7.6 in 30 steps


def test_branches_start_from_identical_weights_with_a_fresh_optimizer(split_train):
    pre = _done(split_train / "pretrain")
    assert pre["optimizer_steps"] == pre["steps"] == 30
    for tokens, steps in ((0, 10), (3072, 8)):
        export = AutoModelForCausalLM.from_pretrained(split_train / "pretrain" / "exports" / f"tokens-{tokens:012d}")
        folders = sorted((split_train / "branches" / f"split-{tokens:012d}").glob("cluster-*"))
        assert len(folders) == 3
        for folder in folders:
            done = _done(folder)
            assert done["start_weights_sha256"] == models.weights_sha256(export)
            # AdamW counts its own steps: a branch's count starts at 0, not at the split step.
            assert done["optimizer_steps"] == done["steps"] == steps
    # Splitting at 0 branches from the very weights pretraining started from.
    assert _done(split_train / "branches" / "split-000000000000" / "cluster-00")["start_weights_sha256"] == pre[
        "start_weights_sha256"
    ]


def test_branches_use_the_base_lr_with_warmup_only_from_step_zero(tiny_run, tmp_path):
    cfg = SplitConfig(run=tiny_run, size="tiny", warmup_tokens=5 * 512, **SPLIT_FLAGS)
    _, pretrain, branches = plan_jobs(cfg, tmp_path)
    lr = models.SIZES["tiny"].lr
    args = runner.training_args(pretrain, bf16=False)
    assert (args.learning_rate, args.warmup_steps, args.lr_scheduler_type.value) == (lr, 5, "constant_with_warmup")
    for job in branches:
        args = runner.training_args(job, bf16=False)
        assert args.learning_rate == lr and (args.adam_beta1, args.adam_beta2) == (0.9, 0.999)
        assert args.warmup_steps == (round(5 * 0.3) if job.split_at == 0 else 0)
        assert job.init == pretrain.out / "exports" / f"tokens-{job.split_at:012d}"
    # A size's own AdamW beta2: the phonebook's 1,600-step runs need a memory far shorter than 0.999's.
    phonebook = runner.training_args(replace(pretrain, size="phonebook-cpu"), bf16=False)
    assert phonebook.adam_beta2 == models.SIZES["phonebook-cpu"].adam_beta2 == 0.95


def test_every_evaluation_is_one_row_per_eval_cluster(split_train):
    rows = runner.read_rows(split_train / "pretrain" / "losses.jsonl")
    assert {(r["step"], r["eval_cluster"]) for r in rows} >= {(s, k) for s in (4, 8) for k in range(3)}
    assert len(rows) == len({(r["step"], r["eval_cluster"]) for r in rows})
    rows = runner.read_rows(split_train / "branches" / "split-000000003072" / "cluster-01" / "losses.jsonl")
    assert all(set(r) == set(LOSS_COLUMNS) for r in rows)
    assert sorted({r["step"] for r in rows}) == [4, 8]
    assert {(r["step"], r["eval_cluster"]) for r in rows} == {(s, 1) for s in (4, 8)}  # a branch: its own cluster
    assert {(r["cluster"], r["split_at"], r["pt_tokens"]) for r in rows} == {(1, 3072, 3072)}
    assert {r["cpt_tokens"] for r in rows} == {4 * 512, 8 * 512}


def test_checkpoints_load_in_transformers(split_train):
    model = AutoModelForCausalLM.from_pretrained(split_train / "branches" / "split-000000003072" / "cluster-02" / "final")
    ids = torch.tensor([[5, 6, 7, 8]])
    assert model(input_ids=ids).logits.shape == (1, 4, 2048)
    assert (split_train / "pretrain" / "final" / "model.safetensors").exists()
    assert not (split_train / "pretrain" / "trainer").exists()  # resumable state is dropped when done


def test_read_rows_drops_a_cut_line_and_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "losses.jsonl"
    path.write_text(json.dumps({"step": 2}) + "\n" + json.dumps({"step": 4}) + "\n" + '{"step": 6, "ev')
    assert runner.read_rows(path) == [{"step": 2}, {"step": 4}]
    assert runner.read_rows(path, max_step=3) == [{"step": 2}]


def test_last_checkpoint_skips_a_half_written_one(tmp_path):
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert runner.last_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert runner.last_checkpoint(tmp_path / "missing") is None


def test_stream_is_a_seeded_walk_over_epochs(tiny_run):
    shards = [open_shard(tiny_run, k, "train", read_run(tiny_run)) for k in range(3)]
    pool = sum(len(s) for s in shards)
    stream = ShuffledStream(shards, 2 * pool, seed=7)
    rows = np.stack([stream[i]["input_ids"].numpy() for i in range(2 * pool)])
    everything = np.concatenate([np.asarray(s.tokens) for s in shards])
    key = lambda a: sorted(map(bytes, a.astype("<u2")))
    assert key(rows[:pool]) == key(everything) == key(rows[pool:])  # each epoch sees every window once
    assert not np.array_equal(rows[:pool], rows[pool:])  # in a new order
    again = ShuffledStream(shards, 2 * pool, seed=7)
    assert np.array_equal(again[pool + 3]["input_ids"].numpy(), rows[pool + 3])
    other = ShuffledStream(shards, pool, seed=8)
    assert not np.array_equal(np.stack([other[i]["input_ids"].numpy() for i in range(4)]), rows[:4])


def test_eval_windows_are_evenly_spaced(tiny_run):
    shard = open_shard(tiny_run, 2, "val", read_run(tiny_run))
    assert len(EvalWindows(shard)) == len(shard) == 16
    assert list(EvalWindows(shard, 4).rows) == [0, 5, 10, 15]


@pytest.mark.slow
def test_branching_from_a_missing_checkpoint_is_a_user_error(tiny_run, tmp_path):
    job = runner.TrainJob("b", tmp_path / "b", tiny_run, "tiny", "gpt2", tmp_path / "nothing", (0,), (0,), 1, 0, 2, 1, 1)
    with pytest.raises(ConfigError, match="no saved model"):
        runner.train(job)
    with pytest.raises(ConfigError, match="budget of 0 steps"):
        replace(job, steps=0)
