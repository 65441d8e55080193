"""The job plan of a split run, `TRAIN/plan.json`: every training job, what it needs, and its budget.

A split run is one pretraining job and K branch jobs per split point. Each `PlannedJob` carries
the full `TrainJob` record (`job`, plain JSON: what `runner.train` runs, so any executor, local or
on another machine, can run it from the plan alone), the step budget, and what must exist first:
`needs` is the pretraining export a branch starts from (a folder, relative to TRAIN, that appears
atomically), `after` the jobs that write it. A job is finished when its folder holds `done.json`.

The plan only grows: a rerun that adds split points appends their branches; a job already planned
must be planned again identically (the pretraining job's exports are the one field that grows).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from splitlm.schemas.versioned import read_versioned

FORMAT_VERSION = 1


class PlannedJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # `pretrain` or `split-<tokens:012d>/cluster-XX`, unique in the plan
    kind: Literal["pretrain", "branch"]
    job: dict[str, Any]  # the TrainJob's fields as plain JSON (paths as strings)
    steps: int = Field(ge=1)
    needs: str | None = None  # TRAIN-relative export folder the job starts from (branches)
    after: list[str] = Field(default_factory=list)  # ids of the jobs that write `needs`


class JobPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    tokens_per_step: int = Field(ge=1)
    total_steps: int = Field(ge=1)  # the pretraining run's steps (D_T)
    split_steps: list[int]  # ascending, every split point planned so far
    jobs: list[PlannedJob]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> JobPlan:
        return read_versioned(cls, path, "job plan", FORMAT_VERSION)

    def by_id(self) -> dict[str, PlannedJob]:
        return {j.id: j for j in self.jobs}
