"""Windows stage: throughput against a bare batch encode, and peak memory on 4x the input.

Prints two ratios, each measured in this run against a baseline run in the same process (or in
sibling subprocesses for memory):
- throughput: tokens/s of `write_windows` (read documents, tokenize, pack, write tokens and
  provenance) divided by tokens/s of `Tokenizer.encode_batch_fast` on the same texts, already in
  memory, batched the same way. Bar: >= 0.8.
- memory: peak RSS of the windows stage on the corpus repeated 4 times divided by that on 1x.
  Bar: <= 1.25 (the stage streams).

Usage: python benchmarks/windows.py [--corpus PATH] [--docs N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT.parent / "shared" / "corpora" / "20news_bydate.jsonl.gz"


def prepare(corpus: Path, copies: int, docs: int, out: Path) -> Path:
    """A run folder whose documents stage holds `copies` x the first `docs` documents."""
    import gzip

    from splitlm.curate.pipeline import WindowsRunConfig, run_windows

    opener = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for _, line in zip(range(docs), fh)]
    src = out / f"corpus-x{copies}.jsonl"
    with open(src, "w", encoding="utf-8") as fh:
        for copy in range(copies):
            for i, row in enumerate(rows):
                fh.write(json.dumps({"id": f"{copy}-{i}", "text": row["text"]}) + "\n")
    run = out / f"run-x{copies}"
    from splitlm.curate.dedup import DedupConfig

    run_windows([src], run, WindowsRunConfig(dedup=DedupConfig(enabled=False)))
    return run


def throughput(run: Path) -> tuple[float, float]:
    import shutil

    from splitlm.curate.pipeline import document_batches
    from splitlm.curate.windows import WindowsConfig, write_windows
    from splitlm.tokenizer import load_tokenizer

    tok = load_tokenizer("gpt2").tokenizer
    batches = [[d["text"] for d in docs] for docs in document_batches(run)]
    start = time.perf_counter()
    n_base = sum(len(e.ids) for texts in batches for e in tok.encode_batch_fast(texts, add_special_tokens=False))
    base = n_base / (time.perf_counter() - start)
    out = run / "bench-windows"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    counts = write_windows(document_batches(run), out, WindowsConfig())
    ours = counts["tokens_in"] / (time.perf_counter() - start)
    return ours, base


def peak_rss_mb(run: Path) -> float:
    """Peak RSS of a fresh process running only the windows stage on `run`."""
    code = (
        "import resource, shutil, sys; from pathlib import Path\n"
        "from splitlm.curate.pipeline import document_batches\n"
        "from splitlm.curate.windows import WindowsConfig, write_windows\n"
        "run = Path(sys.argv[1]); out = run / 'rss-windows'; shutil.rmtree(out, ignore_errors=True); out.mkdir()\n"
        "write_windows(document_batches(run), out, WindowsConfig())\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=NEWS)
    parser.add_argument("--docs", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run1 = prepare(args.corpus, 1, args.docs, Path(tmp))
        run4 = prepare(args.corpus, 4, args.docs, Path(tmp))
        ours, base = throughput(run4)
        rss1, rss4 = peak_rss_mb(run1), peak_rss_mb(run4)
    print(f"windows throughput: {ours:,.0f} tokens/s vs bare encode_batch_fast {base:,.0f} tokens/s "
          f"-> ratio {ours / base:.2f} (bar >= 0.8)")
    print(f"windows peak RSS: 1x {rss1:.0f} MB, 4x {rss4:.0f} MB -> ratio {rss4 / rss1:.2f} (bar <= 1.25)")


if __name__ == "__main__":
    main()
