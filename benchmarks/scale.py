"""Scale: the stages from clusters to cards on synthetic runs of 250k and 1M windows, K = 16 and 64.

Each (size, K) runs in a fresh subprocess of a lean parent (the synthetic run is written by
another one: Linux carries a parent's RSS at fork into the child's ru_maxrss) through the real stage functions and the real stage
runner (`splitlm.curate.stage.run_with_progress`: hashing, structure checks, manifests, atomic
folders), so its peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss` of that child) and wall
time are the stages' own. The cards' routing-accuracy sample is left out (`routing_sample=0`: it
needs the MiniLM and is measured elsewhere); top terms, exemplars and everything else run.

The synthetic run (no model, `synthetic_run.py`) is written once per size and shared by both K
through symbolic links.

It prints, per K: peak RSS at 1M over 250k (bar <= 1.3), wall time at 1M over 250k (bar <= 4.5),
the balance (max/min) and objective of ours against plain faiss k-means on the same fit sample
(from the clusters manifest), and time and memory projected to 10^8 windows from the line through
the two measured points.

    .venv/bin/python benchmarks/scale.py [--sizes 250000,1000000] [--k 16,64] [--seq-len 2048] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_run import DIM, write_synthetic_run

ROOT = Path(__file__).resolve().parent.parent
TARGET = 10**8


def child(base: Path, run: Path, k: int) -> dict:
    """The clusters, shards and cards stages on `run` (inputs linked from `base`); peak RSS of this process."""
    from splitlm.core.hashing import sha256_json
    from splitlm.core.progress import Progress
    from splitlm.curate import shards
    from splitlm.curate.cards import build as cards
    from splitlm.curate.cards import markdown as card_markdown
    from splitlm.curate.cluster import stage as cluster_stage
    from splitlm.curate.cluster.kmeans import KMeansConfig
    from splitlm.curate.stage import run_with_progress

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    run.mkdir(parents=True)
    for stage in ("windows", "embeddings", "dedup"):
        (run / stage).symlink_to(base / stage, target_is_directory=True)
    progress = Progress()
    config = cluster_stage.ClustersConfig(kmeans=KMeansConfig(k=k))
    shard_config, card_config = shards.ShardsConfig(), cards.CardsConfig(routing_sample=0)
    provenance = {"config_hash": "synthetic", "corpus_fingerprint": "synthetic", "tokenizer": "gpt2",
                  "embedder": {"model_id": "synthetic"}, "versions": {}}
    peaks = {}

    def stage(name, *args, **kwargs):
        _reset_peak()
        manifest = run_with_progress(run, name, *args, progress, **kwargs)
        peaks[name] = _peak()
        return manifest

    start = time.perf_counter()
    clusters = stage("clusters", config, "synthetic",
                     lambda out, adv: cluster_stage.write_clusters(run, out, config, "synthetic", adv),
                     algorithm=cluster_stage.ALGORITHM)
    shard = stage("shards", shard_config, sha256_json([clusters.output_fingerprint]),
                  lambda out, adv: shards.write_shards(run, out, shard_config, adv), algorithm=shards.ALGORITHM)
    card = stage("cards", {"cards": "synthetic"}, sha256_json([shard.output_fingerprint]),
                 lambda out, adv: card_markdown.write_cards(cards.build_cards(run, card_config, provenance),
                                                            clusters.counts, out),
                 algorithm=cards.ALGORITHM)
    seconds = time.perf_counter() - start
    plain = clusters.counts["plain_faiss"]
    return {"k": k, "windows": clusters.counts["windows"], "seconds": seconds,
            "stage_seconds": {m.stage: m.wall_seconds for m in (clusters, shard, card)}, "stage_peaks": peaks,
            # the stage peaks reset the kernel's high-water mark, which ru_maxrss then reports from
            "peak_rss": max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, *peaks.values()),
            "rss_after_imports": baseline,
            "max_min": clusters.counts["max_min"], "sample_rows": plain["rows"],
            "ours_max_min": plain["ours_max_min"], "plain_max_min": plain["max_min"],
            "ours_objective": plain["ours_objective"], "plain_objective": plain["objective"],
            "fit_time_ratio": plain["time_ratio"], "shard_windows": shard.counts["windows"]}


def _reset_peak() -> None:
    """Restart this process's peak-RSS counter (VmHWM), so each stage's own peak can be read."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak() -> int:
    """VmHWM of this process in bytes (0 where /proc is missing)."""
    try:
        for row in Path("/proc/self/status").read_text().splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
    except OSError:
        pass
    return 0


def line(x1: float, y1: float, x2: float, y2: float, x: float) -> float:
    return y1 + (y2 - y1) / (x2 - x1) * (x - x1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="250000,1000000")
    parser.add_argument("--k", default="16,64")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--root", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the runs")
    parser.add_argument("--child", nargs=3, metavar=("BASE", "RUN", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--write", nargs=2, metavar=("BASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))))
        return
    if args.write:
        write_synthetic_run(Path(args.write[0]), int(args.write[1]), args.seq_len)
        return
    sizes, ks = [int(s) for s in args.sizes.split(",")], [int(k) for k in args.k.split(",")]
    root = Path(tempfile.mkdtemp(prefix="splitlm-scale-", dir=args.root))
    free = shutil.disk_usage(root).free
    need = sum(n * (args.seq_len + 1) * 2 * 2 + n * DIM * 4 for n in sizes)  # tokens + shards + vectors
    print(f"runs in {root}: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free; seq_len {args.seq_len}; "
          f"{os.cpu_count()} CPUs", flush=True)
    results: dict[tuple[int, int], dict] = {}
    try:
        warm = root / "warm-up"  # libraries and the tokenizer into the page cache before anything is timed
        subprocess.run([sys.executable, __file__, "--write", str(warm), "5000", "--seq-len", "64"], check=True, cwd=ROOT)
        subprocess.run([sys.executable, __file__, "--child", str(warm), str(root / "warm-run"), str(ks[0])],
                       check=True, cwd=ROOT, capture_output=True)
        shutil.rmtree(warm)
        shutil.rmtree(root / "warm-run")
        for n in sizes:
            base = root / f"base-{n}"
            start = time.perf_counter()
            # in a subprocess too: a child's ru_maxrss starts from its parent's RSS at fork, so this one stays lean
            subprocess.run([sys.executable, __file__, "--write", str(base), str(n), "--seq-len", str(args.seq_len)],
                           check=True, cwd=ROOT)
            print(f"synthetic run of {n:,} windows written in {time.perf_counter() - start:.0f} s", flush=True)
            for k in ks:
                run = root / f"run-{n}-k{k}"
                proc = subprocess.run([sys.executable, __file__, "--child", str(base), str(run), str(k)],
                                      capture_output=True, text=True, cwd=ROOT, check=False)
                if proc.returncode != 0:
                    print(f"N={n} K={k} failed:\n{proc.stderr[-3000:]}", flush=True)
                    continue
                r = results[n, k] = json.loads(proc.stdout.strip().splitlines()[-1])
                st = r["stage_seconds"]
                print(f"N={n:>9,} K={k:>3}: {r['seconds']:7.1f} s (clusters {st['clusters']:.1f}, shards "
                      f"{st['shards']:.1f}, cards {st['cards']:.1f}), peak RSS {r['peak_rss'] / 1e9:.2f} GB "
                      f"(after imports {r['rss_after_imports'] / 1e9:.2f}; per stage "
                      + ", ".join(f"{s} {v / 1e9:.2f}" for s, v in r["stage_peaks"].items())
                      + f"); max/min {r['max_min']:.3f}", flush=True)
                shutil.rmtree(run)
            shutil.rmtree(base)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report(results, sizes, ks)


def report(results: dict, sizes: list[int], ks: list[int]) -> None:
    small, large = min(sizes), max(sizes)
    print()
    print("| K | N | wall s | peak RSS GB | max/min (all) | sample rows | max/min ours / plain | objective ours / plain |")
    print("|---|---|---|---|---|---|---|---|")
    for k in ks:
        for n in sizes:
            r = results.get((n, k))
            if r:
                print(f"| {k} | {n:,} | {r['seconds']:.1f} | {r['peak_rss'] / 1e9:.2f} | {r['max_min']:.3f} | "
                      f"{r['sample_rows']:,} | {r['ours_max_min']:.3f} / {r['plain_max_min']:.2f} "
                      f"(ratio {r['ours_max_min'] / r['plain_max_min']:.3f}) | {r['ours_objective']:.4f} / "
                      f"{r['plain_objective']:.4f} (ratio {r['ours_objective'] / r['plain_objective']:.3f}) |")
    print()
    for k in ks:
        a, b = results.get((small, k)), results.get((large, k))
        if not (a and b):
            continue
        rss, wall = b["peak_rss"] / a["peak_rss"], b["seconds"] / a["seconds"]
        print(f"K={k}: peak RSS {large:,}/{small:,} = {rss:.2f} (bar <= 1.3: {'ok' if rss <= 1.3 else 'MISSED'}); "
              f"wall time = {wall:.2f} (bar <= 4.5: {'ok' if wall <= 4.5 else 'MISSED'}); "
              f"fit time vs plain faiss on the sample {b['fit_time_ratio']:.2f}")
        t = line(small, a["seconds"], large, b["seconds"], TARGET)
        m = line(small, a["peak_rss"], large, b["peak_rss"], TARGET)
        per_m = (b["seconds"] - a["seconds"]) / (large - small) * 1e6
        mem_per_m = (b["peak_rss"] - a["peak_rss"]) / (large - small) * 1e6
        print(f"  projected to 10^8 windows (line through the two points): {t / 3600:.1f} h "
              f"({per_m:.1f} s per million windows), peak RSS {m / 1e9:.1f} GB ({mem_per_m / 1e6:.0f} MB per million)")


if __name__ == "__main__":
    main()
