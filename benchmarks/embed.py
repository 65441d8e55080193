"""Embedding throughput: splitlm's Embedder vs plain `SentenceTransformer.encode` with defaults.

Texts are 2,048-token GPT-2 windows cut from concatenated 20 Newsgroups posts, so every text fills
MiniLM's 256 pieces. Both run in this process, alternating round by round so a busy machine slows
both alike; the ratio is of the median rounds. Bar: ratio >= 2.0 with min cosine >= 0.99.

    .venv/bin/python benchmarks/embed.py [--n 240] [--rounds 2] [--precision auto]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT.parent / "shared" / "corpora" / "20news_bydate.jsonl.gz"
CACHE = Path("/tmp/splitlm_bench")


def window_texts(n: int, seq_len: int = 2048) -> list[str]:
    """n decoded GPT-2 windows of seq_len tokens from 20 Newsgroups posts joined with EOS."""
    path = CACHE / f"news_windows_{n}x{seq_len}.json"
    if path.exists():
        return json.loads(path.read_text())
    from splitlm.tokenizer import load_tokenizer

    tok = load_tokenizer("gpt2")
    texts, buf = [], []
    with gzip.open(NEWS, "rt") as f:
        for line in f:
            buf += tok.encode(json.loads(line)["text"]) + [tok.eos_id]
            while len(buf) >= seq_len and len(texts) < n:
                texts.append(tok.decode(buf[:seq_len]))
                buf = buf[seq_len:]
            if len(texts) == n:
                break
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(texts))
    return texts


def timed(fn, texts):
    start = time.perf_counter()
    out = fn(texts)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--mode", default="truncate")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from splitlm.curate.embed.config import EmbedConfig
    from splitlm.curate.embed.model import Embedder, model_path

    texts = window_texts(args.n)
    plain = SentenceTransformer(str(model_path()))
    ours = Embedder(EmbedConfig(precision=args.precision, mode=args.mode))
    plain.encode(texts[:8])  # warm-up: first calls pay for kernel selection
    ours.encode(texts[:8])
    t_plain, t_ours = [], []
    for _ in range(args.rounds):
        dt, ref_ND = timed(plain.encode, texts)
        t_plain.append(dt)
        dt, emb_ND = timed(ours.encode, texts)
        t_ours.append(dt)
    ref_ND = ref_ND / np.linalg.norm(ref_ND, axis=1, keepdims=True)
    cos_N = (ref_ND * emb_ND).sum(1)
    pieces = np.mean([len(ids) for ids in plain.tokenizer(texts[:32], truncation=True)["input_ids"]])
    import torch

    plain_tps, ours_tps = args.n / statistics.median(t_plain), args.n / statistics.median(t_ours)
    print(f"texts: {args.n} windows of 2048 GPT-2 tokens, ~{pieces:.0f} pieces read; threads {torch.get_num_threads()}")
    print(f"plain SentenceTransformer.encode: {plain_tps:.1f} texts/s")
    print(f"splitlm Embedder {ours.spec()['mode']}/{ours.precision}: {ours_tps:.1f} texts/s")
    print(f"ratio {ours_tps / plain_tps:.2f}x (bar >= 2.0), min cosine {cos_N.min():.5f} (bar >= 0.99)")


if __name__ == "__main__":
    main()
