"""`train zeroshot`: every question scored by the pretraining-only model and by the branches of each split point.

Per split point, every question is routed by its task's field (`tasks`) and every choice is scored
by every branch (branch by branch, so each is loaded once): `split-routed` takes each question's
scores from the branch it routes to, `best-branch` is the one branch with the highest accuracy on
the whole task (an upper bound for routing a task as a whole). `pretrained` is TRAIN/pretrain/final.
Rows: `task, model, split_at, n, acc, acc_norm, acc_stderr` (split_at -1 for `pretrained`, as in
losses.csv); `mmlu` pools the questions of every subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from splitlm.schemas.layout import TrainLayout
from splitlm.train.split_model import SplitModel
from splitlm.train.zeroshot import data, score
from splitlm.train.zeroshot.tasks import Question, Task


def load_questions(root: Path, tasks: list[Task], limit: int) -> dict[str, list[Question]]:
    return {t.name: [t.build(doc) for doc in data.read_docs(root, t, limit)] for t in tasks}


def _row(task: str, model: str, split_at: int, acc: np.ndarray, norm: np.ndarray) -> dict:
    return dict(task=task, model=model, split_at=split_at, **score.summary(acc, norm))


def evaluate(train: Path, questions: dict[str, list[Question]], split_points: list[int] | None = None,
             max_loaded: int = 2, batch_size: int = 8, route_by: str = "router", log=print
             ) -> tuple[list[dict], list[dict]]:
    """(result rows, routing rows: per task x split point x branch, questions routed and accuracy)."""
    rows, routing = [], []
    base = SplitModel.pretrained_only(train, batch_size=batch_size)
    for name, qs in questions.items():
        log(f"pretrained: {name} ({len(qs)} questions)")
        rows.append(_row(name, "pretrained", -1, *score.correct(qs, score.choice_logprobs(base, qs, 0))))
    for split_at in split_points or TrainLayout(train).split_points():
        model = SplitModel.from_pretrained(train, split_at, max_loaded=max_loaded, batch_size=batch_size)
        routes = {name: model.route([q.route_text for q in qs], by=route_by) for name, qs in questions.items()}
        per_branch: dict[str, list] = {name: [] for name in questions}
        for c in range(model.k):
            for name, qs in questions.items():
                log(f"split at {split_at:,}: branch {c} on {name}")
                per_branch[name].append(score.correct(qs, score.choice_logprobs(model, qs, c)))
        for name, qs in questions.items():
            route = routes[name]
            picked = [np.asarray([per_branch[name][r][m][i] for i, r in enumerate(route)]) for m in (0, 1)]
            rows.append(_row(name, "split-routed", split_at, *picked))
            accs = [float(acc.mean()) for acc, _ in per_branch[name]]
            best = int(np.argmax(accs))
            rows.append(_row(name, "best-branch", split_at, *per_branch[name][best]))
            for c, acc in enumerate(accs):
                routing.append({"task": name, "split_at": split_at, "branch": c, "routed": int((route == c).sum()),
                                "acc": round(acc, 6), "best": c == best})
    return rows, routing
