"""The job plan of a split run (`TRAIN/plan.json`, `schemas.jobs`): built from the budget's jobs, grown
in place, and asked which jobs can run now.

A branch can run as soon as the pretraining export at its split point exists (exports appear
atomically, see `runner`), so an executor may start branches while pretraining continues toward D_T.
A job whose folder holds `done.json` is finished and never run again; any other job resumes from
its own newest Trainer checkpoint (`runner.train`).
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError
from splitlm.core.hashing import canonical
from splitlm.schemas.jobs import JobPlan, PlannedJob
from splitlm.schemas.layout import TrainLayout
from splitlm.train.budget import Budget
from splitlm.train.config import TrainJob, export_dir

GROWS = ("export_at", "eval_at")
INSIDE = ("out", "init")  # paths inside TRAIN, kept relative to it in the plan so that TRAIN can move  # the fields of a planned job that may change: the pretraining run's points


def job_id(job: TrainJob, out: Path) -> str:
    """`pretrain`, or the branch's folder below TRAIN/branches/ (`split-<tokens>/cluster-XX`)."""
    if job.branch_cluster is None:
        return "pretrain"
    return job.out.relative_to(Path(out) / "branches").as_posix()


def folder(planned: PlannedJob, train: Path) -> Path:
    """The job's folder, under TRAIN."""
    return Path(train) / planned.job["out"]


def _recorded(job: TrainJob, train: Path) -> dict:
    values = canonical(job)
    for name in INSIDE:
        if values[name] is not None:
            values[name] = Path(os.path.relpath(values[name], train)).as_posix()
    return values


def train_job(planned: PlannedJob, train: Path) -> TrainJob:
    """The TrainJob a planned job of TRAIN runs (the inverse of `_recorded`)."""
    known = {f.name for f in fields(TrainJob)}
    unknown = sorted(set(planned.job) - known)
    if unknown:
        raise ConfigError(f"plan job {planned.id}: unknown fields {', '.join(unknown)} (a newer splitlm wrote it)")
    values = dict(planned.job)
    for f in fields(TrainJob):  # JSON has lists and strings where the record has tuples and paths
        if f.name in values and values[f.name] is not None:
            if str(f.type).startswith("tuple"):
                values[f.name] = tuple(values[f.name])
            elif str(f.type).startswith("Path"):
                values[f.name] = Path(train) / values[f.name] if f.name in INSIDE else Path(values[f.name])
    return TrainJob(**values)


def build(budget: Budget, pretrain: TrainJob, branches: list[TrainJob], out: Path) -> JobPlan:
    """The plan of one `train split` call: the pretraining job, then every branch, each waiting on its export."""
    jobs = [PlannedJob(id="pretrain", kind="pretrain", job=_recorded(pretrain, out), steps=pretrain.steps)]
    for b in branches:
        needs = Path(os.path.relpath(export_dir(pretrain.out, b.split_at), out)).as_posix()
        jobs.append(PlannedJob(id=job_id(b, out), kind="branch", job=_recorded(b, out), steps=b.steps, needs=needs,
                               after=["pretrain"]))
    return JobPlan(tokens_per_step=budget.tokens_per_step, total_steps=budget.total_steps,
                   split_steps=sorted(budget.split_steps), jobs=jobs)


def grow(old: JobPlan | None, new: JobPlan, path: Path | str = "plan.json") -> JobPlan:
    """`old` with `new`'s jobs added: a job in both must be planned identically (exports excepted, which
    join); a job only in `old` stays. Anything else means TRAIN holds another run: refused, naming the job."""
    if old is None:
        return new
    if (old.tokens_per_step, old.total_steps) != (new.tokens_per_step, new.total_steps):
        raise ConfigError(f"{path}: planned for {old.total_steps} steps of {old.tokens_per_step:,} tokens, "
                          f"now {new.total_steps} of {new.tokens_per_step:,}; rerun with its flags or a new --out")
    jobs = old.by_id()
    for job in new.jobs:
        if job.id not in jobs:
            jobs[job.id] = job
            continue
        have = jobs[job.id]
        diff = sorted(k for k in have.job.keys() | job.job.keys() if k not in GROWS and have.job.get(k) != job.job.get(k))
        if diff or (have.needs, have.after, have.steps) != (job.needs, job.after, job.steps):
            raise ConfigError(f"{path}: job {job.id} was planned with other {', '.join(diff) or 'inputs'}; "
                              "rerun with its flags or a new --out")
        grown = {k: sorted(set(have.job.get(k, [])) | set(job.job.get(k, []))) for k in GROWS}
        jobs[job.id] = have.model_copy(update={"job": {**have.job, **grown}})
    ordered = [jobs.pop("pretrain")] if "pretrain" in jobs else []
    ordered += [jobs[k] for k in sorted(jobs)]
    return JobPlan(tokens_per_step=new.tokens_per_step, total_steps=new.total_steps,
                   split_steps=sorted(set(old.split_steps) | set(new.split_steps)), jobs=ordered)


def read(out: Path) -> JobPlan | None:
    path = TrainLayout(out).plan
    return JobPlan.read(path) if path.exists() else None


def write(out: Path, plan: JobPlan) -> JobPlan:
    """Grow TRAIN/plan.json by `plan` (atomically) and return what it now holds."""
    path = TrainLayout(out).plan
    merged = grow(read(out), plan, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, merged.to_json())
    return merged


def finished(plan: JobPlan, train: Path) -> set[str]:
    return {j.id for j in plan.jobs if (folder(j, train) / "done.json").exists()}


def ready(plan: JobPlan, out: Path, started: set[str] = frozenset()) -> list[PlannedJob]:
    """Jobs not finished and not `started` whose inputs exist, in plan order."""
    done = finished(plan, out)
    return [j for j in plan.jobs
            if j.id not in done and j.id not in started and (j.needs is None or (Path(out) / j.needs).is_dir())]
