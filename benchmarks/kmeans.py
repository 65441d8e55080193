"""Balanced k-means vs plain faiss k-means: time, balance and objective, measured in one process.

Both fit on the same sample size (k * sample_per_centroid rows) for the same iterations and then
label every row; plain = `faiss.Kmeans(spherical=True)` + nearest centroid, ours = fit (incl. the
bias calibration) + `assign`. Rounds alternate so a busy machine slows both alike; times are medians.
Objective = mean squared L2 distance of each row to its own centroid (no bias), over all rows.
Bars: time ratio <= 1.5, max/min cluster size <= 1.10.

Data: (a) MiniLM embeddings of 20 Newsgroups posts (computed once, cached under /tmp);
(b) a skewed mixture of Gaussians on the sphere, 200k x 384, component weights Pareto-distributed.

    .venv/bin/python benchmarks/kmeans.py [--k 16] [--rounds 3] [--news 2000] [--synthetic 200000]
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


def news_embeddings(n: int) -> np.ndarray:
    path = CACHE / f"news_minilm_{n}.npy"
    if path.exists():
        return np.load(path)
    from splitlm.curate.embed.model import Embedder

    with gzip.open(NEWS, "rt") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(n), f)]
    emb_ND = Embedder().encode(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, emb_ND)
    return emb_ND


def skewed_sphere(n: int, d: int = 384, components: int = 20, seed: int = 0) -> np.ndarray:
    """Gaussian blobs around random unit means, Pareto(1) weights (max/min weight in the thousands)."""
    rng = np.random.default_rng(seed)
    w_C = rng.pareto(1.0, components) + 0.01
    means_CD = rng.standard_normal((components, d))
    means_CD /= np.linalg.norm(means_CD, axis=1, keepdims=True)
    comp_N = rng.choice(components, n, p=w_C / w_C.sum())
    x_ND = (means_CD[comp_N] + rng.standard_normal((n, d)) * 0.6 / np.sqrt(d)).astype(np.float32)
    return x_ND / np.linalg.norm(x_ND, axis=1, keepdims=True)


def compare(name: str, x_ND: np.ndarray, k: int, rounds: int, iters: int, seed: int) -> None:
    from splitlm.curate.cluster.faiss_ops import plain_faiss_kmeans
    from splitlm.curate.cluster.kmeans import KMeansConfig, assign, balance_stats, fit_balanced_kmeans

    cfg = KMeansConfig(k=k, iters=iters, seed=seed)
    t_plain, t_ours = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        _, plain_N, plain_dist_N = plain_faiss_kmeans(x_ND, k, iters, seed, cfg.sample_per_centroid)
        t_plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        model = fit_balanced_kmeans(x_ND, cfg)
        ours_N, ours_dist_N = assign(x_ND, model.centroids_KD, model.biases_K, cfg.chunk)
        t_ours.append(time.perf_counter() - start)
    plain, ours = balance_stats(plain_N, k), balance_stats(ours_N, k)
    ratio = statistics.median(t_ours) / statistics.median(t_plain)
    print(f"{name}: N={len(x_ND)} D={x_ND.shape[1]} K={k} iters={iters}")
    print(f"  time      plain {statistics.median(t_plain):.2f}s  ours {statistics.median(t_ours):.2f}s  "
          f"ratio {ratio:.2f} (bar <= 1.5)")
    print(f"  max/min   plain {plain.max_min:.2f}  ours {ours.max_min:.3f} (bar <= 1.10)   "
          f"imbalance plain {plain.imbalance:.3f} ours {ours.imbalance:.4f}")
    print(f"  objective plain {plain_dist_N.mean():.4f}  ours {ours_dist_N.mean():.4f}  "
          f"(min/max sizes plain {plain.sizes_K.min()}/{plain.sizes_K.max()}, ours "
          f"{ours.sizes_K.min()}/{ours.sizes_K.max()})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, nargs="+", default=[16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--news", type=int, default=2000, help="20 Newsgroups posts to embed (0 = skip)")
    parser.add_argument("--synthetic", type=int, default=200_000, help="skewed synthetic rows (0 = skip)")
    args = parser.parse_args()
    import torch

    print(f"threads: torch {torch.get_num_threads()}, cpus {os.cpu_count()}")
    sets = []
    if args.news:
        sets.append((f"20news MiniLM ({args.news} posts)", news_embeddings(args.news)))
    if args.synthetic:
        sets.append(("skewed Gaussian mixture on the sphere", skewed_sphere(args.synthetic)))
    for name, x_ND in sets:
        for k in args.k:
            compare(name, x_ND, k, args.rounds, args.iters, args.seed)


if __name__ == "__main__":
    main()
