"""`train zeroshot`: lm-evaluation-harness passes over the pretraining-only model and the branches of each split point.

The harness (`lm_eval.evaluator.evaluate`) runs the tasks of `taskconfigs` on a `harness.SplitLM`:
- `pretrained`: TRAIN/pretrain/final (split_at -1, as in losses.csv);
- per split point, one pass per branch with every request sent to that branch: `best-branch` is the
  branch with the highest acc on the whole task (an upper bound for routing a task as a whole);
- then `split-routed`: every request routed by its question's field; its scores come from the
  branch passes (`harness.BranchScores`), so nothing is scored twice.
Rows: `task, model, split_at, n, acc, acc_norm, acc_stderr`, acc/acc_norm/acc_stderr the harness's
(`mean`, `mean_stderr`); `mmlu` pools its subjects as the harness pools a group (weighted by size,
`pooled_sample_stderr`). `limit` is the harness's: the first N documents of each task (MMLU: subject).
"""

from __future__ import annotations

from pathlib import Path

from splitlm.schemas.layout import TrainLayout
from splitlm.train.split_model import SplitModel
from splitlm.train.zeroshot import taskconfigs
from splitlm.train.zeroshot.harness import BranchScores, SplitLM
from splitlm.train.zeroshot.taskconfigs import Task, task_of


def harness_pass(lm: SplitLM, harness_tasks: list, limit: int) -> dict[str, dict]:
    """One `lm_eval.evaluator.evaluate` run: {our task: n, acc, acc_norm, acc_stderr}.

    `evaluate`, not `simple_evaluate`: the latter adds environment info (a `git describe` and torch's
    `collect_env` subprocesses per pass) and nothing we use; the tasks are zero-shot in their configs.
    """
    from lm_eval.api.metrics import aggregate_subtask_metrics, pooled_sample_stderr
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    loaded = TaskManager(include_defaults=False).load(harness_tasks)
    out = evaluate(lm, loaded, limit=limit or None, log_samples=False, verbosity="ERROR")
    grouped: dict[str, list[tuple[int, dict]]] = {}
    for name, metrics in out["results"].items():
        grouped.setdefault(task_of(name).name, []).append((int(out["n-samples"][name]["effective"]), metrics))
    summary = {}
    for name, parts in grouped.items():
        sizes = [n for n, _ in parts]
        if len(parts) == 1:
            acc, norm, err = (parts[0][1][f"{m},none"] for m in ("acc", "acc_norm", "acc_stderr"))
        else:  # MMLU: the subjects pooled, as the harness aggregates a group
            acc = aggregate_subtask_metrics([m["acc,none"] for _, m in parts], sizes)
            norm = aggregate_subtask_metrics([m["acc_norm,none"] for _, m in parts], sizes)
            err = pooled_sample_stderr([m["acc_stderr,none"] for _, m in parts], sizes)
        summary[name] = {"n": sum(sizes), "acc": round(float(acc), 6), "acc_norm": round(float(norm), 6),
                         "acc_stderr": round(float(err), 6)}
    return summary


def _rows(model: str, split_at: int, summary: dict[str, dict]) -> list[dict]:
    return [dict(task=name, model=model, split_at=split_at, **s) for name, s in summary.items()]


def evaluate(train: Path, root: Path, tasks: list[Task], limit: int = 0, split_points: list[int] | None = None,
             max_loaded: int = 2, batch_size: int = 8, route_by: str = "router", log=print
             ) -> tuple[list[dict], list[dict]]:
    """(result rows, routing rows: per task x split point x branch, questions routed and accuracy)."""
    harness_tasks = taskconfigs.build(root, tasks)
    scores = BranchScores(train / "zeroshot" / ".work")
    rows, routing = [], []
    log(f"pretrained: {', '.join(t.name for t in tasks)}")
    base = SplitModel.pretrained_only(train, batch_size=batch_size)
    rows += _rows("pretrained", -1, harness_pass(SplitLM(base, scores, branch=0), harness_tasks, limit))
    for split_at in split_points or TrainLayout(train).split_points():
        model = SplitModel.from_pretrained(train, split_at, max_loaded=max_loaded, batch_size=batch_size)
        per_branch = []
        for c in range(model.k):
            log(f"split at {split_at:,}: branch {c}")
            per_branch.append(harness_pass(SplitLM(model, scores, branch=c), harness_tasks, limit))
        log(f"split at {split_at:,}: routed by {route_by}")
        routed = SplitLM(model, scores, route_by=route_by)
        rows += _rows("split-routed", split_at, harness_pass(routed, harness_tasks, limit))
        for task in tasks:
            accs = [p[task.name]["acc"] for p in per_branch]
            best = max(range(model.k), key=lambda c: accs[c])  # the first of equals
            rows += _rows("best-branch", split_at, {task.name: per_branch[best][task.name]})
            counts = [0] * model.k
            for (name, _), b in routed.routed.items():
                if task_of(name) == task:
                    counts[b] += 1
            routing += [{"task": task.name, "split_at": split_at, "branch": c, "routed": counts[c], "acc": accs[c],
                         "best": c == best} for c in range(model.k)]
    order = {t.name: i for i, t in enumerate(tasks)}
    rows.sort(key=lambda r: (order[r["task"]], r["split_at"]))  # per task: pretrained, then each split point
    return rows, routing
