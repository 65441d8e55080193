"""Next-token loss without full-vocabulary logits for a whole batch.

A causal LM's logits are batch x positions x vocabulary: 8 windows x 2,048 positions x 50,257 ids
in fp32 is 3.3 GB, and computing a loss from them takes two or three such copies (the upcast, the
log-softmax). Here the model's body runs once to its last hidden states (batch x positions x
width, small), and the output head plus cross-entropy run on chunks of positions: at most
`LOGITS_BYTES` of fp32 logits exist at a time, whatever the batch, window or vocabulary. The sum
of the chunks' losses is the unchunked loss up to float rounding.

Used by routed evaluation (`evaluate`) and by the Trainer's evaluation during training
(`LossTrainer.prediction_step`, which also never hands logits to the Trainer to accumulate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Trainer

LOGITS_BYTES = 2**27
"""Largest fp32 logits block held at once (128 MiB): ~650 positions of GPT-2's vocabulary."""


def chunk_rows(vocab_size: int, budget: int = LOGITS_BYTES) -> int:
    """Positions per chunk so that one chunk's fp32 logits fit in `budget` bytes."""
    return max(1, budget // (4 * vocab_size))


def hidden_states(model, ids_BT: torch.Tensor) -> torch.Tensor:
    """The last hidden states [B, T, H] (after the final norm): the model's body without its head."""
    return model.base_model(input_ids=ids_BT, use_cache=False).last_hidden_state


def token_nll(model, ids_BT: torch.Tensor, start: int = 1, budget: int = LOGITS_BYTES) -> torch.Tensor:
    """NLL [B, T - start] of tokens start..T-1 of every row, each predicted from all tokens before it."""
    head = model.get_output_embeddings()
    h_NH = hidden_states(model, ids_BT)[:, start - 1 : -1].reshape(-1, head.in_features)
    target_N = ids_BT[:, start:].reshape(-1)
    rows = chunk_rows(head.out_features, budget)
    nll_N = torch.empty(len(target_N), dtype=torch.float32, device=ids_BT.device)
    for i in range(0, len(target_N), rows):
        logits_CV = head(h_NH[i : i + rows]).float()
        nll_N[i : i + rows] = F.cross_entropy(logits_CV, target_N[i : i + rows], reduction="none")
    return nll_N.view(ids_BT.shape[0], -1)


class LossTrainer(Trainer):
    """The Hugging Face Trainer whose evaluation computes the loss by `token_nll` and returns no logits.

    The default evaluation step materialises the batch's logits, computes the loss from them and
    hands them back to the evaluation loop, which keeps them for every batch (converted to fp32
    numpy at the end): gigabytes for a few windows of a 50k vocabulary. The loss is the same mean
    over all predicted tokens of the batch (the Trainer then averages batches by their size).
    """

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        ids_BT = self._prepare_inputs(inputs)["input_ids"]
        # Accelerate autocasts the model's forward only; the body and head are called directly here.
        bf16 = torch.autocast(ids_BT.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)
        with torch.no_grad(), bf16:
            loss = token_nll(model, ids_BT).mean()
        return loss.detach(), None, None
