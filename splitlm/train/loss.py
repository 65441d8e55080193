"""Next-token loss without full-vocabulary logits for a whole batch.

A causal LM's logits are batch x positions x vocabulary: 8 windows x 2,048 positions x 50,257 ids
in fp32 is 3.3 GB, and computing a loss from them takes two or three such copies (the upcast, the
log-softmax). Here the model's body runs once to its last hidden states (batch x positions x
width, small), and the output head plus cross-entropy run on chunks of positions: at most
`LOGITS_BYTES` of fp32 logits exist at a time, whatever the batch, window or vocabulary. The sum
of the chunks' losses is the unchunked loss up to float rounding.

Used by routed evaluation (`evaluate`) and by the Trainer (`LossTrainer`): in training through
`HeadNLL`, which computes each chunk's gradients as it goes, and in evaluation without handing
logits back to the Trainer to accumulate.
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


def forward_hidden_states(model, ids_BT: torch.Tensor) -> torch.Tensor:
    """`hidden_states`, computed by calling `model` itself, which may be a DDP wrapper.

    DDP averages gradients over processes only for a forward that went through the wrapper, so the
    training loss calls the whole model (with the head on one position only: `logits_to_keep=1`,
    a negligible cost) and reads the body's output from a hook.
    """
    inner = getattr(model, "module", model)
    seen: list[torch.Tensor] = []
    handle = inner.base_model.register_forward_hook(lambda module, args, out: seen.append(out.last_hidden_state))
    try:
        model(input_ids=ids_BT, use_cache=False, logits_to_keep=1)
    finally:
        handle.remove()
    return seen[0]


def _positions(model, ids_BT: torch.Tensor, start: int, body=hidden_states):
    """(output head, hidden states [N, H] of the positions that predict tokens start..T-1, targets [N])."""
    head = getattr(model, "module", model).get_output_embeddings()
    h_NH = body(model, ids_BT)[:, start - 1 : -1].reshape(-1, head.in_features)
    return head, h_NH, ids_BT[:, start:].reshape(-1)


def _logits_buffer(n: int, rows: int, w_VH: torch.Tensor) -> torch.Tensor:
    """One fp32 block for every chunk's logits: a fresh block of this size per chunk would be
    mapped and zero-faulted by the OS each time (the allocator hands blocks this large back to it),
    which cost about a third of an evaluation on a 2-core CPU."""
    return torch.empty(min(rows, n), w_VH.shape[0], dtype=torch.float32, device=w_VH.device)


def _logits_into(buffer: torch.Tensor, h_CH: torch.Tensor, w_VH: torch.Tensor) -> torch.Tensor:
    """h_CH @ w_VH^T as fp32, written into the first rows of `buffer`; the same values as `F.linear`
    (under autocast, the GEMM runs in its dtype and is upcast, as `F.linear(...).float()` would)."""
    out_CV = buffer[: len(h_CH)]
    device = h_CH.device.type
    if torch.is_autocast_enabled(device) or h_CH.dtype != torch.float32 or w_VH.dtype != torch.float32:
        return out_CV.copy_(F.linear(h_CH, w_VH))
    return torch.mm(h_CH, w_VH.T, out=out_CV)


def _exp_shifted_(logits_CV: torch.Tensor, target_C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(NLL [C], sum of exps [C]); turns `logits_CV` (fp32, owned) into exp(logits - row max) in place.

    One pass for the max, one in-place exp and one sum: `F.cross_entropy` and `torch.logsumexp`
    each write a second V-wide block per row (log-softmax, shifted exps), which at 50,257 ids is
    most of their cost after the GEMM. log-sum-exp = max + log(sum exp(x - max)), as theirs.
    """
    target_logit_C = logits_CV.gather(1, target_C[:, None]).squeeze(1)
    max_C = logits_CV.amax(dim=1)
    sum_C = torch.exp_(logits_CV.sub_(max_C[:, None])).sum(dim=1)
    return max_C + torch.log(sum_C) - target_logit_C, sum_C


def token_nll(model, ids_BT: torch.Tensor, start: int = 1, budget: int = LOGITS_BYTES) -> torch.Tensor:
    """NLL [B, T - start] of tokens start..T-1 of every row, each predicted from all tokens before it."""
    head, h_NH, target_N = _positions(model, ids_BT, start)
    assert head.bias is None, "tied output heads have no bias"
    rows = chunk_rows(head.out_features, budget)
    buffer = _logits_buffer(len(target_N), rows, head.weight)
    nll = []
    for i in range(0, len(target_N), rows):
        logits_CV = _logits_into(buffer, h_NH[i : i + rows], head.weight)
        nll.append(_exp_shifted_(logits_CV, target_N[i : i + rows])[0])
    return torch.cat(nll).view(ids_BT.shape[0], -1)


def mean_token_nll(model, ids_BT: torch.Tensor, start: int = 1, budget: int = LOGITS_BYTES) -> torch.Tensor:
    """The mean of `token_nll`, differentiable: the training loss (`HeadNLL` holds no logits for backward)."""
    head, h_NH, target_N = _positions(model, ids_BT, start, forward_hidden_states)
    assert head.bias is None, "tied output heads have no bias"
    return HeadNLL.apply(h_NH, head.weight, target_N, chunk_rows(head.out_features, budget)) / len(target_N)


class HeadNLL(torch.autograd.Function):
    """sum_i NLL(target_i | h_i W^T), chunk by chunk, with its gradients computed on the way.

    Autograd would keep every chunk's softmax for backward (the full logits again). The gradient of
    a sum is known in forward: dNLL_i/dlogits_i = softmax_i - onehot(target_i), so each chunk adds
    its share to dL/dh and dL/dW right away and only those two (N x H and V x H) are kept. Same
    GEMMs as the unchunked loss (one forward, two backward), no recomputation. Under autocast the
    GEMMs run in its dtype, as the head's would.
    """

    @staticmethod
    def forward(ctx, h_NH, w_VH, target_N, rows):
        total = torch.zeros((), dtype=torch.float32, device=h_NH.device)
        grad_h = torch.empty_like(h_NH, dtype=torch.float32)
        grad_w = torch.zeros_like(w_VH, dtype=torch.float32)
        buffer = _logits_buffer(len(target_N), rows, w_VH)
        device = h_NH.device.type
        gemm_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else h_NH.dtype
        fp32 = gemm_dtype == torch.float32 and h_NH.dtype == torch.float32
        chunk_grad_w = torch.empty_like(grad_w) if fp32 else None  # each chunk's dW, reused
        for i in range(0, len(target_N), rows):
            h_CH, target_C = h_NH[i : i + rows], target_N[i : i + rows]
            logits_CV = _logits_into(buffer, h_CH, w_VH)
            nll_C, sum_C = _exp_shifted_(logits_CV, target_C)
            total += nll_C.sum()
            d_CV = logits_CV.div_(sum_C[:, None])  # softmax, in place of the logits
            d_CV[torch.arange(len(target_C)), target_C] -= 1.0
            d_CV = d_CV.to(gemm_dtype)
            grad_h[i : i + rows] = d_CV @ w_VH.to(d_CV.dtype)
            if fp32:
                grad_w += torch.mm(d_CV.T, h_CH, out=chunk_grad_w)
            else:
                grad_w += d_CV.T @ h_CH.to(d_CV.dtype)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (h_NH.dtype, w_VH.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_total * grad_h).to(h_dtype), (grad_total * grad_w).to(w_dtype), None, None


class LossTrainer(Trainer):
    """The Hugging Face Trainer with the loss of `token_nll`, in training and evaluation.

    The default loss materialises the batch's logits (batch x positions x vocabulary) and two or
    three fp32 copies of them; its evaluation step also hands the logits back to the evaluation
    loop, which keeps them for every batch (as fp32 numpy at the end): gigabytes for a few windows
    of a 50k vocabulary. The loss is the same mean over the batch's predicted tokens.
    """

    def _autocast(self, ids_BT: torch.Tensor):
        # Accelerate autocasts the model's forward only; the body and head are called directly here.
        return torch.autocast(ids_BT.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids_BT = inputs["input_ids"]
        with self._autocast(ids_BT):
            loss = mean_token_nll(model, ids_BT)
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        ids_BT = self._prepare_inputs(inputs)["input_ids"]
        with torch.no_grad(), self._autocast(ids_BT):
            loss = token_nll(model, ids_BT).mean()
        return loss.detach(), None, None
