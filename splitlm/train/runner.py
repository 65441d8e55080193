"""The one training function: pretraining and continued pretraining are the same run with another init.

`train(job)` runs the Hugging Face Trainer on a job: a scratch (seeded) or saved-weights init, the
shards to train on, a step budget and the warmup. Pretraining on the mixture and a branch on one
cluster differ only in those fields. A branch loads weights only, so its AdamW state starts empty,
and its LR is constant at the size's base LR (warmup only when it starts from scratch).

A job folder holds:
- `trainer/checkpoint-N/`: the Trainer's resumable state (weights, optimizer, scheduler, RNG);
  the newest complete one is where a killed job continues.
- `exports/tokens-XXXXXXXXXXXX/`: weights saved with `save_pretrained` at requested steps (the
  split points of the pretraining run); written to a temporary folder, then renamed.
- `final/`: the last weights; `losses.jsonl`: one row per evaluation (`splitlm.schemas.losses.LOSS_COLUMNS`).
- `done.json`: the `JobResult`, written last; a job with it is skipped on rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError
from splitlm.schemas.layout import cluster_number
from splitlm.schemas.run import RunSummary
from splitlm.train import checkpoint, models
from splitlm.train import data as data_mod
from splitlm.train.config import TrainJob, export_dir
from splitlm.train.loss import LossTrainer


@dataclass(frozen=True)
class JobResult:
    """What a finished job reports; saved as its done.json."""

    name: str
    steps: int
    tokens: int
    """Trained tokens: steps x batch x seq_len."""
    n_params: int
    n_params_non_embedding: int
    start_weights_sha256: str
    """Hash of the weights the job started from (identical for every branch of one split)."""
    optimizer_steps: int
    """AdamW's step count at the end: equals `steps` when the optimizer started empty."""
    resumed_from: int
    """The Trainer checkpoint step this process continued from (0: a fresh start)."""
    tokens_per_second: float
    """Over the wall time of training in this process, evaluations included."""


def use_bf16(precision: str) -> bool:
    if precision != "auto":
        return precision == "bf16"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def last_checkpoint(folder: Path) -> Path | None:
    """The newest Trainer checkpoint whose trainer_state.json (written last) exists."""
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def read_rows(path: Path, max_step: int | None = None) -> list[dict]:
    """Rows of a losses.jsonl; a line cut by a kill is dropped, and rows past `max_step` too."""
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if max_step is None or row["step"] <= max_step:
            rows.append(row)
    return rows


def world_size() -> int:
    """Processes of this job: 1, or what torchrun (or another DDP launcher) set in WORLD_SIZE."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def per_process_batch(job: TrainJob, world: int) -> int:
    """Each process's share of the job's batch: the global batch (and so every loss) is the same at any world size."""
    if job.batch_size % world:
        raise ConfigError(f"--batch-size {job.batch_size}: not divisible by the {world} processes of a job")
    return job.batch_size // world


def training_args(job: TrainJob, bf16: bool):
    size = models.get_size(job.size)
    world = world_size()
    batch = per_process_batch(job, world)
    # Evaluation and checkpoints are scheduled by JobHooks, so the Trainer's own schedules are off.
    # Under DDP each process takes consecutive per-process batches, so a step covers the very rows a
    # one-process step does, and the gradients are averaged over them.
    return TrainingArguments(
        output_dir=str(job.out / "trainer"), max_steps=job.steps,
        per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        ddp_backend=None if world == 1 or torch.cuda.is_available() else "gloo",
        learning_rate=size.lr, weight_decay=size.weight_decay, max_grad_norm=size.clip,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=size.adam_beta2,
        lr_scheduler_type="constant_with_warmup", warmup_steps=job.warmup_steps,
        train_sampling_strategy="sequential",  # ShuffledStream already holds the seeded order
        eval_strategy="no", save_strategy="no", save_total_limit=1, prediction_loss_only=True,
        logging_strategy="steps", logging_steps=job.eval_every, disable_tqdm=True, report_to="none",
        bf16=bf16, use_cpu=not torch.cuda.is_available(), seed=job.seed, dataloader_num_workers=0,
    )  # fmt: skip


class JobHooks(TrainerCallback):
    """Trainer callback: evaluation and save schedule, split-point exports, losses rows."""

    def __init__(self, job: TrainJob, rows_path: Path, counts: models.ParamCounts, tokens_per_step: int):
        self.job, self.rows_path, self.counts = job, rows_path, counts
        self.tokens_per_step = tokens_per_step
        self.trained_steps = 0  # in this process, for tokens/s
        self._shown: list[str] = []

    def _export(self, model, step: int) -> None:
        if step in self.job.export_at and is_main_process():
            checkpoint.save(model, export_dir(self.job.out, step * self.tokens_per_step))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            self._export(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        self.trained_steps += 1
        self._export(model, step)
        control.should_evaluate = step % self.job.eval_every == 0 or step == self.job.steps or step in self.job.eval_at
        control.should_save = step % self.job.save_every == 0 and step < self.job.steps
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero:  # every process gets the gathered metrics; one writes them
            return
        job, step = self.job, state.global_step
        tokens = step * self.tokens_per_step
        with self.rows_path.open("a") as fh:
            for key, loss in (metrics or {}).items():
                if not (key.startswith("eval_c") and key.endswith("_loss")):
                    continue
                k = int(key[len("eval_c") : -len("_loss")])
                row = dict(
                    size=job.size, arch=job.arch, n_params=self.counts.total,
                    n_params_non_embedding=self.counts.non_embedding,
                    pt_tokens=tokens if job.branch_cluster is None else job.split_at,
                    cpt_tokens=0 if job.branch_cluster is None else tokens,
                    cluster=k if job.branch_cluster is None else job.branch_cluster,
                    eval_cluster=k, split_at=job.split_at, step=step, eval_loss=float(loss),
                )  # fmt: skip
                fh.write(json.dumps(row) + "\n")
                self._shown.append(f"{key[len('eval_') : -len('_loss')]} {loss:.3f}")
        # The Trainer reports one eval cluster per call; print once all of them are in.
        if len(self._shown) == len(job.eval_clusters):
            if job.verbose:
                losses = " ".join(self._shown)
                print(f"{job.name} step {step}/{job.steps} ({tokens:,} tokens) {losses}", flush=True)
            self._shown = []


def _initial_model(job: TrainJob, info: RunSummary):
    if job.init is None:
        size = models.get_size(job.size)
        config = models.build_config(size, job.arch, info.vocab_size, info.eos_id, info.seq_len + 1)
        model = models.build_model(config, job.seed)
    elif (job.init / "config.json").exists():
        model = checkpoint.load(job.init)
    else:
        raise ConfigError(f"{job.init}: no saved model to branch from; rerun the pretraining job")
    if model.config.vocab_size != info.vocab_size:
        vocab = model.config.vocab_size
        raise ConfigError(f"{job.init}: vocabulary {vocab}, the run's tokenizer has {info.vocab_size}")
    model.loss_type = "ForCausalLM"  # GPT2LMHeadModel's class name maps to no loss: say it, skip the warning
    return model


def _datasets(job: TrainJob, info: RunSummary):
    train_shards = [data_mod.open_shard(job.run, k, "train", info) for k in job.train_clusters]
    stream = data_mod.ShuffledStream(train_shards, job.steps * job.batch_size, job.seed)
    evals = {}
    for k in job.eval_clusters:
        windows = data_mod.EvalWindows(data_mod.open_shard(job.run, k, "val", info), job.eval_windows)
        if not len(windows):
            raise ConfigError(f"{data_mod.shard_dir(job.run, k, 'val', info.k)}: no validation windows")
        evals[f"c{cluster_number(k, info.k)}"] = windows
    return stream, evals


def train(job: TrainJob) -> JobResult:
    """Run (or finish, or skip) one job; returns its result."""
    done = job.out / "done.json"
    if done.exists():
        return JobResult(**json.loads(done.read_text()))
    if job.threads:
        torch.set_num_threads(job.threads)
    info = data_mod.read_run(job.run)
    model = _initial_model(job, info)
    counts = models.count_params(model)
    start_sha = models.weights_sha256(model)
    resume = last_checkpoint(job.out / "trainer")
    rows_path = job.out / "losses.jsonl"
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    kept = read_rows(rows_path, resumed_from)
    main = is_main_process()
    job.out.mkdir(parents=True, exist_ok=True)
    if main:
        atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in kept))

    stream, evals = _datasets(job, info)
    hooks = JobHooks(job, rows_path, counts, tokens_per_step=job.batch_size * info.seq_len)
    if job.verbose and main:
        start_at = f"checkpoint step {resumed_from}" if resume else (job.init or f"seed {job.seed}")
        print(f"{job.name}: {job.size} {job.arch}, {counts.total:,} params ({counts.non_embedding:,} non-embedding), "
              f"{job.steps} steps of {hooks.tokens_per_step:,} tokens, from {start_at}", flush=True)
    trainer = LossTrainer(
        model=model, args=training_args(job, use_bf16(job.precision)),
        train_dataset=stream, eval_dataset=evals, callbacks=[hooks],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # JobHooks prints one line per evaluation instead
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - start
    if main:
        checkpoint.save(trainer.model, job.out / "final")
    opt_state = trainer.optimizer.state_dict()["state"]
    result = JobResult(
        name=job.name, steps=job.steps, tokens=job.steps * hooks.tokens_per_step,
        n_params=counts.total, n_params_non_embedding=counts.non_embedding,
        start_weights_sha256=start_sha,
        optimizer_steps=int(next(iter(opt_state.values()))["step"]) if opt_state else 0,
        resumed_from=resumed_from,
        tokens_per_second=round(hooks.trained_steps * hooks.tokens_per_step / seconds, 1),
    )  # fmt: skip
    if main:
        atomic_write_text(done, json.dumps(asdict(result), indent=2) + "\n")
        shutil.rmtree(job.out / "trainer", ignore_errors=True)  # optimizer state is 2x the weights
    return result
