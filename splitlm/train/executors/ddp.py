"""A job over several processes: `torchrun` starts `procs` copies of `splitlm.train.job_main` on this
node, which the Trainer joins into one DDP job (NCCL on GPUs, gloo on CPUs). Each process takes its
share of the batch (`runner.per_process_batch`), so the job's losses are the one-process job's up to
the order of floating-point sums; process 0 alone writes rows, exports, final weights and done.json.

On a Ray cluster a job that asks for G GPUs is one Ray task holding them that runs this launcher.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from splitlm.core.errors import SplitlmError
from splitlm.schemas.jobs import PlannedJob
from splitlm.train import jobs, runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(train: Path, job: PlannedJob, procs: int, threads: int = 1) -> runner.JobResult:
    """Run `job` of TRAIN's plan as a `procs`-process DDP job; its result, read from its done.json."""
    done = jobs.folder(job, train) / "done.json"
    if not done.exists():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               "-m", "splitlm.train.job_main", str(train), job.id, "--threads", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, check=False, env=env, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            said = [line for line in lines if line.startswith("error: ")]
            tail = (said or lines or [f"exit {proc.returncode}"])[-1]
            raise SplitlmError(f"job {job.id} ({procs} processes) failed: {tail}")
    return runner.JobResult(**json.loads(done.read_text()))
