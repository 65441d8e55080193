"""Exact-match accuracy from one teacher-forced pass equals greedy decoding, token by token."""

import numpy as np
import torch

from splitlm.train import models
from splitlm.train.phonebook import facts as F
from splitlm.train.phonebook.config import CPU_SIZE
from splitlm.train.phonebook.score import fact_accuracy


def _greedy_numbers(model, prompts: torch.Tensor) -> torch.Tensor:
    ids = prompts
    with torch.no_grad():
        for _ in range(F.DIGITS):
            nxt = model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids[:, F.PROMPT :]


def test_teacher_forced_score_is_greedy_exact_match():
    model = models.build_model(
        models.build_config(CPU_SIZE, "gpt2", len(F.VOCAB), F.EOS, F.WIDTH), seed=1
    ).eval()
    facts = F.make_facts(40, 0.0, seed=5)[0]
    greedy = _greedy_numbers(model, torch.from_numpy(facts[:, : F.PROMPT])).numpy()
    # The first 15 facts get the model's own greedy number (right by construction), the rest
    # keep theirs, except 5 whose greedy number is right up to its last digit.
    facts[:15, F.PROMPT :] = greedy[:15]
    facts[15:20, F.PROMPT :] = greedy[15:20]
    facts[15:20, -1] = F.FIRST_DIGIT + (greedy[15:20, -1] - F.FIRST_DIGIT + 1) % 10
    wrong_by_chance = sum(np.array_equal(facts[i, F.PROMPT :], greedy[i]) for i in range(20, 40))
    assert fact_accuracy(model, facts, batch_size=7) == (15 + wrong_by_chance) / 40
