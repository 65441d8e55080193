"""One job of a split run's plan, as a process: `python -m splitlm.train.job_main TRAIN JOB_ID [--threads N]`.

What a DDP launcher starts on every process of a multi-process job (`torchrun --nproc_per_node G -m
splitlm.train.job_main ...`), and what any other scheduler (SLURM, a shell loop) can start for a job
of TRAIN/plan.json. The job resumes from its own newest checkpoint; a finished job does nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from splitlm.core.errors import SplitlmError
from splitlm.train import jobs, runner


def run(train: Path, job_id: str, threads: int = 0) -> runner.JobResult:
    plan = jobs.read(train)
    if plan is None:
        raise SplitlmError(f"{train}: no plan.json; run `train split` first")
    planned = plan.by_id().get(job_id)
    if planned is None:
        raise SplitlmError(f"{train / 'plan.json'}: no job {job_id!r}")
    return runner.train(replace(jobs.train_job(planned, train), threads=threads))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitlm.train.job_main", description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="the TRAIN folder (holds plan.json)")
    parser.add_argument("job", help="a job id of plan.json: pretrain or split-<tokens>/cluster-XX")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per process (0: torch's default)")
    args = parser.parse_args(argv)
    try:
        run(args.train, args.job, args.threads)
    except SplitlmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
