"""Routing: accuracy and calibration at 32 tokens for the run's routers, and prefixes routed per second.

On a curated run (default: the demo corpus curated with `--embedder static --router learned` into
/tmp/splitlm_bench/router-run, made once; or `--run RUN`), on its held-out validation windows (no
router was fitted on them):
1. accuracy at `--prefix` tokens: the share of windows whose prefix routes to the window's own
   cluster, for the centroid rule and (when the run has one) the learned router, with a 95% interval,
   and each router's expected calibration error (10 bins); then the same accuracies on the routing
   stage's held-out fold (training windows the learned head was not fitted on, from its manifest),
   which is larger than the validation set on small runs;
2. throughput: prefixes routed per second from token ids (decode, embed, score) by
   `Router.route_tokens`, against the embedder alone on the same texts in the same process (the
   ratio is the cost routing adds). Target: >= 500 prefixes/s on 2 cores with the static embedder.

    .venv/bin/python benchmarks/router.py [--run RUN] [--prefix 32] [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path("/tmp/splitlm_bench")
TARGET = 500.0


def demo_run() -> Path:
    run = CACHE / "router-run"
    if not (run / "routing" / "manifest.json").exists():
        bin_dir = Path(sys.executable).parent
        demo = subprocess.run([bin_dir / "splitlm", "assets", "--path", "demo"], check=True, capture_output=True,
                              text=True).stdout.strip()
        subprocess.run([bin_dir / "curate", "cluster", demo, "--domain-field", "domain", "--k", "6", "--embedder",
                        "static", "--router", "learned", "--out", str(run)], check=True)
    return run


def interval(hits: np.ndarray) -> str:
    p, n = float(np.mean(hits)), len(hits)
    return f"{p:.3f} +- {1.96 * np.sqrt(p * (1 - p) / max(n, 1)):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--prefix", type=int, default=32)
    parser.add_argument("--n", type=int, default=2000, help="prefixes timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from splitlm.curate.cluster.router import Router
    from splitlm.curate.routing.calibration import expected_calibration_error
    from splitlm.curate.routing.decide import top2_probabilities
    from splitlm.curate.routing.heads import centroid_scores
    from splitlm.curate.shards import read_labels
    from splitlm.curate.window_columns import read_window_columns
    from splitlm.schemas.manifest import StageManifest
    from splitlm.schemas.routing import temperature_at
    from splitlm.schemas.tokens import TokenArray

    run = args.run or demo_run()
    router = Router.load(run)
    tokens, labels = TokenArray(run / "windows"), read_labels(run)
    val = np.flatnonzero(read_window_columns(run).is_val_N)
    if not len(val):
        raise SystemExit(f"{run}: no validation windows")
    prefixes_VP = tokens[val][:, : args.prefix]
    texts = router.tokenizer.decode_batch(prefixes_VP)
    x_VD = router.embedder.encode(texts)
    own = labels[val]
    print(f"run {run}: K={router.k}, embedder {router.spec.embedder.model_id} ({router.spec.embedder.mode}), "
          f"router {router.kind}, {len(val):,} validation windows, prefix {args.prefix} tokens; "
          f"cpus {os.cpu_count()}, load {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    routing = router.routing
    t_c = temperature_at(routing.spec.prefix_lengths, routing.spec.centroid_temperatures, args.prefix) if routing else 1.0
    chosen_c = router.assign_vectors(x_VD).clusters
    conf_c = top2_probabilities(centroid_scores(x_VD, router.centroids_KD, router.biases_K), chosen_c, t_c)[0]
    hits_c = chosen_c == own
    print(f"centroid rule: accuracy {interval(hits_c)}, ECE {expected_calibration_error(conf_c, hits_c):.3f}")
    if router.kind == "learned":
        learned = router.route_vectors(x_VD, args.prefix)
        hits_l = learned.clusters == own
        print(f"learned router: accuracy {interval(hits_l)}, ECE "
              f"{expected_calibration_error(learned.probability, hits_l):.3f}")
    counts = StageManifest.read(run / "routing").counts if (run / "routing" / "manifest.json").exists() else {}
    if "calibration_windows" in counts:
        p = str(min(counts["calibration_accuracy_centroid"], key=lambda q: abs(int(q) - args.prefix)))
        n = counts["calibration_windows"]
        for name in ("centroid", "learned"):
            acc = counts[f"calibration_accuracy_{name}"][p]
            print(f"routing stage's held-out fold ({n:,} training windows the head never saw), P={p}: {name} "
                  f"{interval(np.array([1] * round(acc * n) + [0] * (n - round(acc * n))))}")
    reps = -(-args.n // len(val))
    batch = np.concatenate([prefixes_VP] * reps)[: args.n]
    batch_texts = router.tokenizer.decode_batch(batch)
    t_route, t_embed = [], []
    for _ in range(args.rounds):  # alternating: a busy machine slows both alike
        start = time.perf_counter()
        router.route_tokens(batch, args.prefix)
        t_route.append(time.perf_counter() - start)
        start = time.perf_counter()
        router.embedder.encode(batch_texts)
        t_embed.append(time.perf_counter() - start)
    rate = len(batch) / statistics.median(t_route)
    print(f"throughput: {rate:,.0f} prefixes/s routed from token ids (target >= {TARGET:.0f}: "
          f"{'PASS' if rate >= TARGET else 'MISS'}); routing / embedding alone time ratio "
          f"{statistics.median(t_route) / statistics.median(t_embed):.2f}")


if __name__ == "__main__":
    main()
