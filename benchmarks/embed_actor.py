"""Throughput of one MiniLM embedder as a Ray actor runs it: windows/s with 1 torch thread.

`--engine ray` gives each CPU actor one CPU and one torch thread (a GPU actor one GPU), so the
cluster's embedding rate is about this number times the number of actors. Texts are 2,048-token
GPT-2 windows of 20 Newsgroups (`benchmarks/embed.py`), each filling MiniLM's 256 pieces. Also
prints the rate with every thread of this machine in one process, for comparison.

    .venv/bin/python benchmarks/embed_actor.py [--n 96] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from embed import window_texts  # noqa: E402


def rate(embedder, texts: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        embedder.encode(texts)
        times.append(time.perf_counter() - start)
    return len(texts) / statistics.median(times)


def main() -> None:
    import torch

    from splitlm.curate.embed.config import EmbedConfig
    from splitlm.curate.embed.model import Embedder

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    texts = window_texts(args.n)
    embedder = Embedder(EmbedConfig())
    embedder.encode(texts[:8])  # warm-up
    all_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one = rate(embedder, texts, args.rounds)
    torch.set_num_threads(all_threads)
    many = rate(embedder, texts, args.rounds)
    print(f"MiniLM ({embedder.precision}, truncate, 256 pieces), {args.n} windows of 2,048 tokens, "
          f"CPU: {os.cpu_count()} cores")
    print(f"one actor, 1 thread: {one:.1f} windows/s ({one * 2048 / 1e3:.0f}k tokens/s)")
    print(f"one process, {all_threads} threads: {many:.1f} windows/s (ratio {many / one:.2f})")


if __name__ == "__main__":
    main()
