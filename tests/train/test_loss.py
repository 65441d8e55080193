"""Chunked next-token loss: equal to the model's own loss, never more than one chunk of logits at once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import Trainer, TrainingArguments

from splitlm.train import models
from splitlm.train.data import EvalWindows, open_shard, read_run
from splitlm.train.loss import LossTrainer, chunk_rows, mean_token_nll, token_nll

VOCAB = 300


def _model(arch: str):
    config = models.build_config(models.get_size("tiny"), arch, VOCAB, 0, 64)
    return models.build_model(config, seed=1).eval()


@pytest.mark.parametrize("arch", models.ARCHES)
@pytest.mark.parametrize("rows", [1, 7, None])  # one position per chunk, a ragged last chunk, one chunk
def test_chunked_loss_equals_the_unchunked_loss(arch, rows):
    model = _model(arch)
    ids = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(0))
    budget = 4 * VOCAB * rows if rows else 2**27
    labels = ids.clone()
    labels[:, :10] = -100  # tokens 0..9 are context only: scoring starts at token 10
    with torch.inference_mode():
        full = model(input_ids=ids, labels=ids).loss.item()
        masked = model(input_ids=ids, labels=labels).loss.item()
        assert token_nll(model, ids, 1, budget).mean().item() == pytest.approx(full, rel=1e-6)
        nll = token_nll(model, ids, 10, budget)
    assert nll.shape == (3, 30)
    assert nll.mean().item() == pytest.approx(masked, rel=1e-6)


@pytest.mark.parametrize("arch", models.ARCHES)
def test_chunked_loss_gives_the_unchunked_gradients(arch):
    """Training goes through `token_nll` too: its checkpointed chunks must give the same gradients."""
    ids = torch.randint(0, VOCAB, (2, 33), generator=torch.Generator().manual_seed(1))
    grads = []
    for chunked in (False, True):
        model = _model(arch).train()
        loss = mean_token_nll(model, ids, 1, 4 * VOCAB * 5) if chunked else model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_the_head_sees_one_chunk_of_positions_at_a_time(monkeypatch):
    from splitlm.train import loss

    model = _model("gpt2")
    seen, buffers = [], set()
    into = loss._logits_into

    def spy(buffer, h_CH, w_VH):
        out = into(buffer, h_CH, w_VH)
        seen.append(tuple(out.shape))
        buffers.add(buffer.data_ptr())
        assert out.data_ptr() == buffer.data_ptr()  # every chunk's logits go into the one block
        return out

    monkeypatch.setattr(loss, "_logits_into", spy)
    ids = torch.randint(0, VOCAB, (4, 50))
    budget = 4 * VOCAB * 16  # 16 positions' fp32 logits
    with torch.inference_mode():
        token_nll(model, ids, 1, budget)
    assert len(buffers) == 1
    assert chunk_rows(VOCAB, budget) == 16
    assert len(seen) == math.ceil(4 * 49 / 16) and max(s[0] for s in seen) == 16
    assert all(s[-1] == VOCAB and len(s) == 2 for s in seen)  # [positions, vocab]: never batch x positions x vocab


def _evaluate(trainer_cls, model, windows, out) -> float:
    args = TrainingArguments(output_dir=str(out), per_device_eval_batch_size=3, report_to="none", use_cpu=True,
                             disable_tqdm=True, prediction_loss_only=trainer_cls is LossTrainer)
    return trainer_cls(model=model, args=args, eval_dataset=windows).evaluate()["eval_loss"]


@pytest.mark.slow
def test_trainer_evaluation_matches_the_default_and_keeps_no_logits(tiny_run, monkeypatch, tmp_path):
    """The real HF Trainer: our evaluation step against its default one, on a real validation shard."""
    windows = EvalWindows(open_shard(tiny_run, 2, "val", read_run(tiny_run)), 8)  # 8 windows of 129 tokens
    config = models.build_config(models.get_size("tiny"), "gpt2", 2048, 0, 129)
    model = models.build_model(config, seed=2)
    model.loss_type = "ForCausalLM"
    default = _evaluate(Trainer, model, windows, tmp_path)
    kept = []
    step = LossTrainer.prediction_step
    monkeypatch.setattr(LossTrainer, "prediction_step", lambda *a, **k: kept.append(step(*a, **k)) or kept[-1])
    ours = _evaluate(LossTrainer, model, windows, tmp_path)
    assert ours == pytest.approx(default, rel=1e-5)
    assert len(kept) == 3 and all(logits is None and labels is None for _, logits, labels in kept)
    assert np.isfinite(ours) and ours > math.log(2048) - 1  # an untrained model: about uniform
