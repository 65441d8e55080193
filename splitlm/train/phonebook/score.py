"""Exact-match fact accuracy: greedy decoding of the 22 digits given BOS + name + `|`.

Greedy decoding reproduces a number exactly if and only if, fed the true prefix, the model's
argmax at every digit position is the true digit (by induction over the positions: while all
earlier argmaxes were right, the greedy prefix is the true prefix). So one teacher-forced forward
pass per batch scores greedy exact match; `tests/train/test_phonebook_score.py` checks it against a
token-by-token greedy loop.
"""

from __future__ import annotations

import numpy as np
import torch

from splitlm.train import checkpoint
from splitlm.train.data import open_shard, read_run
from splitlm.train.phonebook.facts import PROMPT


@torch.no_grad()
def fact_accuracy(model, facts: np.ndarray, batch_size: int = 1024) -> float:
    """Share of `facts` ([n, WIDTH] ids) whose number greedy decoding reproduces exactly."""
    model.eval()
    right = 0
    for i in range(0, len(facts), batch_size):
        ids = torch.from_numpy(facts[i : i + batch_size])
        logits = model(input_ids=ids[:, :-1], use_cache=False).logits[:, PROMPT - 1 :]
        right += int((logits.argmax(-1) == ids[:, PROMPT:]).all(dim=1).sum())
    return right / len(facts)


def score_sweep(cfg, plans) -> list[dict]:
    """One row per (alpha, fraction): accuracy averaged over the two clusters, each scored by its
    own branch (f < 1) or by the pretraining run at T steps (f = 1)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one "Loading weights" bar per model otherwise
    rows = []
    for alpha, (run, pretrain, branches) in plans.items():
        info = read_run(run)
        clusters = [np.asarray(open_shard(run, k, "val", info)[:], dtype=np.int64) for k in range(info.k)]
        for f in cfg.fractions:
            folders = (
                [j.out / "final" for j in branches[f]] if f < 1 else [pretrain.out / "final"] * len(clusters)
            )
            accs = [fact_accuracy(checkpoint.load(folder), facts) for folder, facts in zip(folders, clusters)]
            rows.append(
                {
                    "alpha": alpha,
                    "budget": cfg.total_steps,
                    "pt_fraction": f,
                    "accuracy": sum(accs) / len(accs),
                }
            )
    return rows
