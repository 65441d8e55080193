"""One long document: peak memory of the streamed windows and dedup paths against the whole-document ones.

All in one process, after a warm-up; a thread samples RSS every millisecond, and each phase reports
its peak RSS above the RSS it started from (freed memory is handed back to the OS between phases,
and the streamed phases run first, so memory a whole-document phase reuses can only lower its figure).
- windows: `write_windows` on the document, chunked (`splitlm.curate.chunking`) against the
  same stage encoding the whole text at once (the tokenizer marked not streamable). Bar: <= 0.25.
- dedup: `Deduplicator.check` (exact key and MinHash block by block) against hashing the normalised
  text and all its shingles in one MinHash update, as before streaming. Bar: <= 0.25.
- growth: the streamed windows and dedup peaks on a document 4x as long, over those on 1x.
  Bar: <= 1.25 (memory per document does not grow with its length beyond the text itself).
Outputs of the two windows paths are compared too (they must be byte-identical).

The document is paragraphs of the demo corpus (English, code, multilingual) in a seeded order.

    .venv/bin/python benchmarks/long_document.py [--chars 2000000]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import hashlib
import json
import random
import tempfile
import threading
import time
from pathlib import Path

import psutil
from datasketch import MinHash

from splitlm.assets import demo_corpus_path
from splitlm.curate import windows
from splitlm.curate.dedup import DedupConfig, Deduplicator, normalise, shingles
from splitlm.tokenizer import load_tokenizer


def document(chars: int, seed: int = 0) -> str:
    rows = [json.loads(line)["text"] for line in demo_corpus_path().read_text(encoding="utf-8").splitlines()]
    paragraphs = [p for text in rows for p in text.split("\n") if p.strip()]
    rng, parts, n = random.Random(seed), [], 0
    while n < chars:
        parts.append(rng.choice(paragraphs))
        n += len(parts[-1]) + 1
    return "\n".join(parts)[:chars]


class PeakRSS:
    """Peak RSS above the starting RSS while the block runs, in MB."""

    def __enter__(self):
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:  # not glibc
            pass
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _poll(self):
        while not self.done.wait(0.001):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mb = (self.peak - self.start) / 2**20


def windows_phase(text: str, tmp: Path, name: str, streamable: bool) -> tuple[PeakRSS, str]:
    tok = load_tokenizer("gpt2")
    windows.load_tokenizer = lambda spec: dataclasses.replace(tok, streamable=streamable)
    out = tmp / name
    out.mkdir()
    docs = [[{"doc_id": "long", "text": text, "domain": None, "source": "bench"}]]
    with PeakRSS() as peak:
        windows.write_windows(iter(docs), out, windows.WindowsConfig())
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(out.iterdir()))).hexdigest()
    return peak, digest


def dedup_streamed(text: str) -> PeakRSS:
    dedup = Deduplicator(DedupConfig())
    with PeakRSS() as peak:
        dedup.check("long", text)
    return peak


def dedup_whole(text: str) -> PeakRSS:
    template = MinHash(num_perm=DedupConfig().num_perm, seed=DedupConfig().seed)
    with PeakRSS() as peak:
        norm = normalise(text)
        hashlib.sha256(norm.encode("utf-8")).digest()
        template.copy().update_batch(shingles(norm, DedupConfig().shingle_words))
        del norm
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chars", type=int, default=2_000_000)
    args = parser.parse_args()
    text, text4 = document(args.chars), document(4 * args.chars, seed=1)
    load_tokenizer("gpt2")
    with tempfile.TemporaryDirectory() as tmp:
        for streamable in (True, False):  # warm-up: one-time allocations (threads, writers) stay out of the figures
            windows_phase(document(300_000, seed=2), Path(tmp), f"warm-{streamable}", streamable)
        w_stream, h_stream = windows_phase(text, Path(tmp), "streamed", True)
        w_stream4, _ = windows_phase(text4, Path(tmp), "streamed4", True)
        w_whole, h_whole = windows_phase(text, Path(tmp), "whole", False)
    d_stream, d_stream4 = dedup_streamed(text), dedup_streamed(text4)
    d_whole = dedup_whole(text)
    print(f"long document: {len(text):,} characters ({len(text4):,} for the 4x growth check)")
    print(f"windows peak RSS: streamed +{w_stream.mb:.0f} MB ({w_stream.seconds:.1f}s) vs whole document "
          f"+{w_whole.mb:.0f} MB ({w_whole.seconds:.1f}s) -> ratio {w_stream.mb / w_whole.mb:.2f} (bar <= 0.25); "
          f"outputs {'identical' if h_stream == h_whole else 'DIFFER'}")
    print(f"dedup peak RSS: streamed +{d_stream.mb:.0f} MB ({d_stream.seconds:.1f}s) vs whole document "
          f"+{d_whole.mb:.0f} MB ({d_whole.seconds:.1f}s) -> ratio {d_stream.mb / d_whole.mb:.2f} (bar <= 0.25)")
    growth = max(w_stream4.mb, d_stream4.mb) / max(w_stream.mb, d_stream.mb)
    print(f"streamed peak RSS on a 4x document: windows +{w_stream4.mb:.0f} MB, dedup +{d_stream4.mb:.0f} MB "
          f"-> ratio {growth:.2f} to 1x (bar <= 1.25)")


if __name__ == "__main__":
    main()
