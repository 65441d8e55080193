"""Training throughput: splitlm's Trainer-based runner vs a minimal hand-written torch loop.

Both train the same model (same seed, GPT-2 vocabulary) on the same shard stream with the same
batch, precision, AdamW settings, clip and constant-with-warmup LR, in this process, alternating
round by round so a busy machine slows both alike; the ratio is of the median rounds. The runner's
figure is the tokens/s it reports itself (wall time of `Trainer.train`, its one final evaluation of
one window per cluster included). Bar: ratio >= 0.8.

    .venv/bin/python benchmarks/train.py [--size mini] [--steps 30] [--batch-size 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT.parent / "shared" / "corpora" / "20news_bydate.jsonl.gz"
sys.path.insert(0, str(ROOT))


def hand_loop(job, bf16: bool) -> float:
    """tokens/s of a plain loop: DataLoader, autocast forward, backward, clip, AdamW, LR schedule."""
    import torch
    from torch.utils.data import DataLoader

    from splitlm.train import data, models
    from splitlm.train.runner import _initial_model

    info = data.read_run(job.run)
    size = models.get_size(job.size)
    model = _initial_model(job, info).train()
    shards = [data.open_shard(job.run, k, "train", info) for k in job.train_clusters]
    loader = DataLoader(data.ShuffledStream(shards, job.steps * job.batch_size, job.seed), job.batch_size)
    # The Trainer's grouping: no weight decay on biases and norms.
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": size.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=size.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, job.warmup_steps)))
    start = time.perf_counter()
    for batch in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), size.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return job.steps * job.batch_size * info.seq_len / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="mini")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import torch

    from splitlm.train import runner
    from tests.train.conftest import write_run

    torch.set_num_threads(args.threads)
    bf16 = runner.use_bf16(args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "run").mkdir()
        run = write_run(Path(tmp) / "run", NEWS, tokenizer="gpt2")
        job = runner.TrainJob(
            name="bench", out=Path(tmp) / "job", run=run, size=args.size, arch="gpt2", init=None,
            train_clusters=(0, 1, 2), eval_clusters=(0, 1, 2), steps=args.steps, warmup_steps=3,
            batch_size=args.batch_size, eval_every=args.steps, save_every=args.steps + 1,
            eval_windows=1, precision=args.precision, verbose=False,
        )  # fmt: skip
        hand, ours = [], []
        for r in range(args.rounds):
            hand.append(hand_loop(job, bf16))
            result = runner.train(replace(job, out=Path(tmp) / f"job{r}"))
            ours.append(result.tokens_per_second)
            print(f"round {r}: hand loop {hand[-1]:.0f} tokens/s, runner {ours[-1]:.0f} tokens/s", flush=True)
    n_params = result.n_params
    print(f"model {args.size} ({n_params / 1e6:.1f}M params, GPT-2 vocab), batch {args.batch_size} x 128, "
          f"{'bf16' if bf16 else 'fp32'}, {args.threads} threads, {args.steps} steps")
    ratio = statistics.median(ours) / statistics.median(hand)
    print(f"runner {statistics.median(ours):.0f} tokens/s vs hand loop {statistics.median(hand):.0f}: "
          f"ratio {ratio:.2f} (bar >= 0.8)")


if __name__ == "__main__":
    main()
