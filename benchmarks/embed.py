"""Embedding throughput: splitlm's MiniLM backends over plain `SentenceTransformer.encode`, then the
static embedder over MiniLM truncate, and how far their clusterings agree.

Texts are 2,048-token GPT-2 windows cut from concatenated 20 Newsgroups posts, so every text fills
MiniLM's 256 pieces. Everything runs in this process, alternating round by round so a busy machine
slows all alike; ratios are of the median rounds.

1. The CPU: model, avx2 / avx512_bf16 / amx flags, whether torch sees native bf16, what `auto` picks.
2. MiniLM, each backend (`auto`'s choice, fp32, int8 ONNX Runtime) over plain encode, with its min
   cosine to plain encode. Bar: `auto` >= 2.0x with min cosine >= 0.99.
3. The static embedder (`embed/static.py`) over MiniLM truncate on the same windows (bar >= 20x), and
   on `--labelled` posts (one per text, a seeded sample across 20 Newsgroups) the balanced k-means
   of each at `--k`: purity against `meta.newsgroup` and the ARI between the two clusterings.

    .venv/bin/python benchmarks/embed.py [--n 240] [--rounds 2] [--labelled 800] [--k 16] [--no-int8]

int8 needs the graph `splitlm assets` builds; if it is missing it is built into the cache (~10-60 s).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

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


def labelled_posts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """n posts drawn with `seed` from all of 20 Newsgroups (the file is sorted by group), with labels."""
    with gzip.open(NEWS, "rt") as f:
        rows = [json.loads(line) for line in f]
    pick = np.sort(np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False))
    return [rows[i]["text"] for i in pick], [rows[i]["meta"]["newsgroup"] for i in pick]


def cpu_report() -> str:
    import torch

    from splitlm.curate.embed.model import cpu_has_native_bf16, resolve_precision

    info = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("Model name")), "?")
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    have = " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni",
                                                                      "avx512_bf16", "amx_bf16", "amx_tile"))
    return (f"cpu: {model}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; {have}\n"
            f"native bf16 (torch): {cpu_has_native_bf16()}; precision auto -> {resolve_precision('auto', 'cpu')}")


def rounds(fns: dict, texts: list[str], n_rounds: int) -> tuple[dict, dict]:
    """Median seconds per fn over alternating rounds, and each fn's last output."""
    for fn in fns.values():
        fn(texts[:8])  # warm-up: first calls pay for kernel selection
    times: dict = {name: [] for name in fns}
    outs = {}
    for _ in range(n_rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn(texts)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outs


def minilm_backends(texts: list[str], n_rounds: int, int8: bool) -> tuple[object, float]:
    """Plain encode against each backend; returns the auto Embedder and its seconds (for the static part)."""
    from sentence_transformers import SentenceTransformer

    from splitlm.core.cache import cache_dir
    from splitlm.curate.embed.config import EmbedConfig
    from splitlm.curate.embed.model import Embedder, model_path
    from splitlm.curate.embed.onnx import provision_onnx

    plain = SentenceTransformer(str(model_path()), device="cpu")
    ours = {"auto": Embedder(EmbedConfig(device="cpu"))}
    if ours["auto"].precision != "fp32":
        ours["fp32"] = Embedder(EmbedConfig(precision="fp32", device="cpu"))
    if int8:
        provision_onnx(cache_dir(), check_only=False)
        ours["int8"] = Embedder(EmbedConfig(precision="int8", device="cpu"))
    fns = {"plain": plain.encode, **{name: e.encode for name, e in ours.items()}}
    secs, outs = rounds(fns, texts, n_rounds)
    ref_ND = outs["plain"] / np.linalg.norm(outs["plain"], axis=1, keepdims=True)
    print(f"plain SentenceTransformer.encode: {len(texts) / secs['plain']:.2f} texts/s")
    for name, emb in ours.items():
        cos_N = (ref_ND * outs[name]).sum(1)
        bar = " (bar >= 2.0 with min cosine >= 0.99)" if name == "auto" else ""
        print(f"splitlm Embedder {name} -> {emb.spec()['mode']}/{emb.precision}: {len(texts) / secs[name]:.2f} texts/s, "
              f"ratio {secs['plain'] / secs[name]:.2f}x{bar}, min cosine {cos_N.min():.5f}")
    return ours["auto"], secs["auto"]


def static_part(minilm, minilm_s: float, texts: list[str], n_rounds: int, n_labelled: int, k: int) -> None:
    """The hook for the static embedder: speed over MiniLM truncate, then clustering agreement."""
    try:
        from splitlm.curate.embed.static import StaticEmbedder
    except ImportError as err:
        print(f"static embedder not available ({err})")
        return
    from splitlm.core.errors import SplitlmError
    from splitlm.curate.embed.config import EmbedConfig

    try:
        static = StaticEmbedder(EmbedConfig(name="static"))
    except SplitlmError as err:  # not distilled yet: `splitlm assets`
        print(f"static embedder not available ({err})")
        return
    secs, _ = rounds({"static": static.encode}, texts, n_rounds)
    print(f"static ({static.config.read_mode}): {len(texts) / secs['static']:.1f} windows/s, "
          f"ratio over MiniLM {minilm.precision} truncate {minilm_s / secs['static']:.1f}x (bar >= 20)")
    posts, labels = labelled_posts(n_labelled)
    a_N, b_N = cluster(static.encode(posts), k), cluster(minilm.encode(posts), k)
    print(f"{len(posts)} labelled posts, K={k}: purity static {purity(a_N, labels):.3f}, "
          f"MiniLM {purity(b_N, labels):.3f}; ARI between the two clusterings {ari(a_N, b_N):.3f}")


def cluster(x_ND: np.ndarray, k: int) -> np.ndarray:
    from splitlm.curate.cluster.kmeans import KMeansConfig, fit_and_assign

    return fit_and_assign(x_ND.astype(np.float32), KMeansConfig(k=k, seed=0))[1]


def purity(labels_N: np.ndarray, classes: list[str]) -> float:
    _, cls_N = np.unique(classes, return_inverse=True)
    table = np.zeros((labels_N.max() + 1, cls_N.max() + 1), dtype=np.int64)
    np.add.at(table, (labels_N, cls_N), 1)
    return float(table.max(1).sum() / len(labels_N))


def ari(a_N: np.ndarray, b_N: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a_N, b_N))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=240, help="windows timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--labelled", type=int, default=800, help="labelled posts clustered by both embedders")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 ONNX Runtime backend")
    args = parser.parse_args()

    print(cpu_report())
    texts = window_texts(args.n)
    print(f"texts: {len(texts)} windows of 2048 GPT-2 tokens (MiniLM truncate reads 254 pieces of each)")
    minilm, minilm_s = minilm_backends(texts, args.rounds, not args.no_int8)
    static_part(minilm, minilm_s, texts, args.rounds, args.labelled, args.k)


if __name__ == "__main__":
    main()
