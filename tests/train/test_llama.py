"""`--arch llama` through the real Hugging Face Trainer: rows written, loss falls, the export loads."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForCausalLM

from splitlm.schemas.losses import LOSS_COLUMNS
from splitlm.train import runner
from splitlm.train.data import EvalWindows, open_shard, read_run

STEPS, EVAL_EVERY, EVAL_WINDOWS = 30, 10, 8


def _val_loss(model, run, cluster: int) -> float:
    """Mean loss on the same validation windows the job evaluates."""
    windows = EvalWindows(open_shard(run, cluster, "val", read_run(run)), EVAL_WINDOWS)
    ids = torch.stack([windows[i]["input_ids"] for i in range(len(windows))])
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


@pytest.mark.slow
def test_llama_pretraining_through_the_trainer(tiny_run, tmp_path):
    job = runner.TrainJob(
        name="pretrain", out=tmp_path / "pretrain", run=tiny_run, size="tiny", arch="llama", init=None,
        train_clusters=(0, 1, 2), eval_clusters=(0, 1, 2), steps=STEPS, warmup_steps=0, batch_size=4,
        eval_every=EVAL_EVERY, save_every=1000, export_at=(0,), eval_windows=EVAL_WINDOWS, precision="fp32",
        verbose=False,
    )  # fmt: skip
    result = runner.train(job)
    assert (result.steps, result.optimizer_steps, result.resumed_from) == (STEPS, STEPS, 0)
    assert json.loads((job.out / "done.json").read_text())["name"] == "pretrain"
    assert not (job.out / "trainer").exists()  # the resumable state is removed once done

    rows = runner.read_rows(job.out / "losses.jsonl")
    assert all(set(r) == set(LOSS_COLUMNS) for r in rows)
    assert sorted((r["step"], r["eval_cluster"]) for r in rows) == [(s, k) for s in (10, 20, 30) for k in range(3)]
    assert {(r["arch"], r["size"], r["split_at"], r["cpt_tokens"]) for r in rows} == {("llama", "tiny", -1, 0)}

    final = AutoModelForCausalLM.from_pretrained(job.out / "final")
    start = AutoModelForCausalLM.from_pretrained(runner.export_dir(job.out, 0))
    for model in (final, start):
        assert isinstance(model, LlamaForCausalLM) and model.config.model_type == "llama"
        assert model.config.vocab_size == 2048 and model.config.tie_word_embeddings
    for k in range(3):
        logged = [r["eval_loss"] for r in sorted(rows, key=lambda r: r["step"]) if r["eval_cluster"] == k]
        initial = _val_loss(start, tiny_run, k)  # ~ln(2048) = 7.6
        assert logged[-1] < logged[0] and logged[-1] < initial - 0.5, (k, initial, logged)
        # The saved final weights are the ones the last evaluation scored.
        assert _val_loss(final, tiny_run, k) == pytest.approx(logged[-1], abs=0.02)
