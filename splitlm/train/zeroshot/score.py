"""Scoring multiple-choice questions by log-likelihood: acc, acc_norm and their standard error.

`choice_logprobs` asks a `SplitModel` for the log-likelihood of every choice of every question
under one branch; `metrics` turns them into the harness's acc (argmax log-likelihood), acc_norm
(argmax log-likelihood / characters of the choice string) and the sample standard error of the
mean accuracy (sqrt(var_{n-1} / n)), per question as 0/1 so that any subset can be aggregated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from splitlm.train.zeroshot.tasks import Question


def choice_logprobs(model, questions: Sequence[Question], branch: int) -> list[np.ndarray]:
    """Per question, the log-likelihood [choices] of each choice under `branch` of `model`."""
    requests = [(ctx, cont) for q in questions for ctx, cont in zip(q.contexts, q.continuations)]
    lls = np.asarray([ll for ll, _ in model.loglikelihood(requests, routes=[branch] * len(requests))])
    bounds = np.cumsum([0] + [len(q.choices) for q in questions])
    return [lls[lo:hi] for lo, hi in pairwise(bounds)]


def correct(questions: Sequence[Question], lls: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(acc [n], acc_norm [n]) as 0/1 per question."""
    acc = np.asarray([int(np.argmax(ll)) == q.gold for q, ll in zip(questions, lls)], np.float64)
    lengths = [np.asarray([float(len(c)) for c in q.choices]) for q in questions]
    norm = np.asarray([int(np.argmax(ll / n)) == q.gold for q, ll, n in zip(questions, lls, lengths)], np.float64)
    return acc, norm


def stderr(values: np.ndarray) -> float:
    """Sample standard error of the mean (lm-evaluation-harness's `mean_stderr`)."""
    n = len(values)
    return math.sqrt(float(np.var(values, ddof=1)) / n) if n > 1 else float("nan")


def summary(acc: np.ndarray, norm: np.ndarray) -> dict:
    return {"n": len(acc), "acc": round(float(acc.mean()), 6), "acc_norm": round(float(norm.mean()), 6),
            "acc_stderr": round(stderr(acc), 6)}
