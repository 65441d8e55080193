"""`train zeroshot`: every question scored by the pretraining-only model and by the branches of each split point.

Per split point, every question is routed by its task's field (`tasks`) and every choice is scored
by every branch (branch by branch, so each is loaded once): `split-routed` takes each question's
scores from the branch it routes to, `best-branch` is the one branch with the highest accuracy on
the whole task (an upper bound for routing a task as a whole). `pretrained` is TRAIN/pretrain/final.
Rows: `task, model, split_at, n, acc, acc_norm, acc_stderr` (split_at -1 for `pretrained`, as in
losses.csv); `mmlu` pools the questions of every subject.

Resuming: the log-likelihoods of each (model folder, task questions) pass are saved in
`TRAIN/zeroshot/.work/<key>.npy` (key: the checkpoint's manifest and every request's text), so a
rerun after an interruption scores only what is missing; `report.write` removes the folder once
results.csv is written.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_path
from splitlm.core.hashing import sha256_file, sha256_json
from splitlm.schemas.layout import TrainLayout
from splitlm.train.split_model import SplitModel
from splitlm.train.zeroshot import data, score
from splitlm.train.zeroshot.tasks import Question, Task


def load_questions(root: Path, tasks: list[Task], limit: int) -> dict[str, list[Question]]:
    return {t.name: [t.build(doc) for doc in data.read_docs(root, t, limit)] for t in tasks}


def _folder_key(folder: Path) -> str:
    manifest = folder / "checkpoint.json"
    return sha256_file(manifest if manifest.exists() else folder / "model.safetensors")


def cached_logprobs(work: Path, model, questions: list[Question], branch: int) -> list[np.ndarray]:
    """`score.choice_logprobs`, read from `work` when an earlier run saved the same pass."""
    requests = [[q.contexts, q.continuations] for q in questions]
    path = work / f"{sha256_json([_folder_key(model.folders[branch]), requests])[:24]}.npy"
    bounds = np.cumsum([0] + [len(q.choices) for q in questions])
    if path.exists():
        flat = np.load(path)
    else:
        flat = np.concatenate(score.choice_logprobs(model, questions, branch) or [np.zeros(0)])
        work.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, flat)
    return [flat[lo:hi] for lo, hi in pairwise(bounds)]


def _row(task: str, model: str, split_at: int, acc: np.ndarray, norm: np.ndarray) -> dict:
    return dict(task=task, model=model, split_at=split_at, **score.summary(acc, norm))


def evaluate(train: Path, questions: dict[str, list[Question]], split_points: list[int] | None = None,
             max_loaded: int = 2, batch_size: int = 8, route_by: str = "router", log=print
             ) -> tuple[list[dict], list[dict]]:
    """(result rows, routing rows: per task x split point x branch, questions routed and accuracy)."""
    rows, routing = [], []
    work = train / "zeroshot" / ".work"
    base = SplitModel.pretrained_only(train, batch_size=batch_size)
    for name, qs in questions.items():
        log(f"pretrained: {name} ({len(qs)} questions)")
        rows.append(_row(name, "pretrained", -1, *score.correct(qs, cached_logprobs(work, base, qs, 0))))
    for split_at in split_points or TrainLayout(train).split_points():
        model = SplitModel.from_pretrained(train, split_at, max_loaded=max_loaded, batch_size=batch_size)
        routes = {name: model.route([q.route_text for q in qs], by=route_by) for name, qs in questions.items()}
        per_branch: dict[str, list] = {name: [] for name in questions}
        for c in range(model.k):
            for name, qs in questions.items():
                log(f"split at {split_at:,}: branch {c} on {name}")
                per_branch[name].append(score.correct(qs, cached_logprobs(work, model, qs, c)))
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
