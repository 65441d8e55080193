"""Windows: tokenize documents in batches and cut non-overlapping windows of seq_len + 1 tokens.

Each document's tokens are followed by one EOS. Policies for what does not fill a window:
- `concat` (default, as DCLM): documents are joined into one stream and cut every seq_len + 1
  tokens, so a window may hold the end of one document and the start of the next. Only the
  stream's final partial window is dropped; documents lying wholly inside it count as dropped.
- `drop`: each document is cut on its own; its short tail is dropped, and a document shorter than
  one window is dropped entirely.

Validation is held out per document before packing: a seeded hash of the doc id sends
`val_fraction` of documents to a separate stream, so no validation window ever shares a document
with a training window. Window ids follow emission order across both streams.

Output: token rows [windows, seq_len + 1] (uint16 for vocabularies up to 65,536, else uint32) in
`tokens-XXXXX.bin` parts of `part_mb` megabytes, or one `tokens.bin` when they fit in one part,
described by `tokens.json` (`splitlm.schemas.tokens`), and `windows-*.parquet` (schema WINDOWS)
with every window's provenance.

Packing is per file group (`splitlm.curate.engine`): each group of input files is its own
`concat` stream (train and val), so the final partial window of each group's streams is dropped,
whichever engine runs it; window ids are then made global at the windows barrier, in group order.

Memory per document is bounded. Short documents are tokenized in runs of up to ENCODE_CHARS
(512k) characters; a document longer than CHUNK_CHARS (64k) is tokenized in chunks of about 64k
characters, ENCODE_CHARS at a time, each cut where GPT-2 pre-tokenisation cannot merge across
the cut (`splitlm.curate.chunking`), so its ids are those of the whole text; the packer takes the
chunks as they come and keeps at most one window pending. Beyond the document's text itself, the
stage then holds one tokenizer call's working memory (~70 bytes per character: ~40 MB), the same
again for the next run being tokenized in the background, and one window, whatever the document's
length (measured: a 5.2 MB document in ~0.35 GB for the whole `curate windows` run, most of it
the process and tokenizer baseline). Two cases are not bounded this way: a stretch of more than 64k
characters with no safe cut (one run of letters, digits, punctuation or whitespace; a script
without spaces or newlines) is one chunk, ~70 bytes per character of that stretch; and a tokenizer
that does not pre-tokenize exactly as GPT-2 (`LoadedTokenizer.streamable`) encodes each document
whole, ~115 bytes per character.
Tokenizing the next run overlaps with packing the current one (the Rust tokenizer releases the GIL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.core.parts import PartWriter
from splitlm.curate.chunking import CHUNK_CHARS, ENCODE_CHARS, encode_chunks
from splitlm.curate.packing import CharSpans, EndSpans, Packer, Segment, window_row
from splitlm.schemas.tables import WINDOWS
from splitlm.schemas.tokens import TokenWriter, finish, token_dtype
from splitlm.tokenizer import LoadedTokenizer, load_tokenizer

# 2: `concat` packs per file group (each group drops its own final partial window)
ALGORITHM = 2  # bump when the same config and input would give other output (see `splitlm.curate.stage`)

POLICIES = ("concat", "drop")


@dataclass(frozen=True)
class WindowsConfig:
    seq_len: int = 2048
    """Model context; windows hold seq_len + 1 tokens (inputs plus the shifted label)."""
    tokenizer: str = "gpt2"
    """`gpt2`, a tokenizer.json, a folder holding one, or a locally cached hub name."""
    policy: str = "concat"
    """`concat` or `drop` (see the module docstring)."""
    val_fraction: float = 0.02
    """Share of documents held out for validation, chosen by a seeded hash of the doc id."""
    seed: int = 0
    part_mb: float = 256.0
    """Megabytes of windows per `tokens-XXXXX.bin` part (`--part-mb`); one part is a plain tokens.bin."""

    def __post_init__(self):
        if self.part_mb <= 0:
            raise ConfigError(f"--part-mb must be positive, got {self.part_mb}")
        if self.seq_len < 1:
            raise ConfigError(f"--seq-len must be >= 1, got {self.seq_len}")
        if self.policy not in POLICIES:
            raise ConfigError(f"--policy must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


def is_val(doc_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


def _units(batches: Iterator[list[dict]]) -> Iterator[list[dict]]:
    """Documents regrouped for the tokenizer: runs of short ones up to ENCODE_CHARS characters, and
    each long one alone (chunked when the tokenizer allows, see `_pieces`)."""
    unit: list[dict] = []
    chars = 0
    for docs in batches:
        for doc in docs:
            n = len(doc["text"])
            if unit and (chars + n > ENCODE_CHARS or n > CHUNK_CHARS):
                yield unit
                unit, chars = [], 0
            unit.append(doc)
            chars += n
            if n > CHUNK_CHARS:
                yield unit
                unit, chars = [], 0
    if unit:
        yield unit


def _chunked(doc: dict, tok: LoadedTokenizer) -> bool:
    return tok.streamable and tok.byte_lengths is not None and len(doc["text"]) > CHUNK_CHARS


def _encoded_units(batches: Iterator[list[dict]], tok: LoadedTokenizer) -> Iterator[tuple[list[dict], object]]:
    """Yield (docs, future of encodings or None when chunked later), encoding unit i+1 in a thread
    while the caller packs unit i."""
    encode = tok.tokenizer.encode_batch_fast if tok.byte_lengths is not None else tok.tokenizer.encode_batch
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for docs in _units(batches):
            nxt = None if _chunked(docs[0], tok) else pool.submit(encode, [d["text"] for d in docs],
                                                                  add_special_tokens=False)
            if pending is not None:
                yield pending
            pending = (docs, nxt)
        if pending is not None:
            yield pending


def _pieces(doc: dict, enc, tok: LoadedTokenizer, eos: np.ndarray):
    """A document's (tokens, spans) pieces: its whole encoding or its chunks, then the EOS."""
    text = doc["text"]
    if enc is not None:
        yield np.asarray(enc.ids, dtype=np.int64), CharSpans(text, enc, tok.byte_lengths)
    else:
        for start, chunk, chunk_enc in encode_chunks(tok, text, CHUNK_CHARS, ENCODE_CHARS):
            yield np.asarray(chunk_enc.ids, dtype=np.int64), CharSpans(chunk, chunk_enc, tok.byte_lengths, start)
    yield eos, EndSpans(len(text))


def rows_per_part(part_mb: float, width: int, dtype: np.dtype) -> int:
    """Windows per token part: `part_mb` megabytes of rows (at least one)."""
    return max(1, int(part_mb * 2**20) // (width * np.dtype(dtype).itemsize))


def write_windows(batches: Iterator[list[dict]], out: Path, config: WindowsConfig, advance=lambda n: None) -> dict:
    """The windows stage over batches of document rows (doc_id, text, domain, source), in one stream."""
    counts = pack_windows(batches, out, config, advance)
    parts = counts.pop("parts")
    finish(out, np.dtype(counts["dtype"]), config.seq_len + 1, parts)
    return {**counts, "token_parts": max(1, len(parts))}


def pack_windows(batches: Iterator[list[dict]], out: Path, config: WindowsConfig, advance=lambda n: None) -> dict:
    """Windows numbered from 0 into `tokens-XXXXX.bin` parts and `windows-*.parquet` under `out`;
    the counts, with the token parts (file, rows, sha256) under `parts`, unfinished (no header)."""
    tok = load_tokenizer(config.tokenizer)
    dtype, width = token_dtype(tok.vocab_size), config.seq_len + 1
    rows = PartWriter(out, "windows", WINDOWS, rows_per_group=1024)
    bins = TokenWriter(out, dtype, width, rows_per_part(config.part_mb, width, dtype))
    count = {"windows": 0, "val_windows": 0, "documents": 0, "tokens_in": 0}

    def emitter(split: str):
        def emit(tokens_W: np.ndarray, segments: list[Segment]) -> None:
            bins.write(tokens_W)
            rows.write(window_row(count["windows"], split, segments))
            count["windows"] += 1
            count["val_windows"] += split == "val"
        return emit

    packers = {s: Packer(width, config.policy, emitter(s)) for s in ("train", "val")}
    eos = np.array([tok.eos_id], dtype=np.int64)
    for docs, future in _encoded_units(batches, tok):
        for doc, enc in zip(docs, future.result() if future is not None else [None]):
            split = "val" if is_val(doc["doc_id"], config.seed, config.val_fraction) else "train"
            count["tokens_in"] += packers[split].add(doc, doc["domain"], _pieces(doc, enc, tok, eos))
            count["documents"] += 1
        advance(len(docs))
    for packer in packers.values():
        packer.finish()
    rows.close()
    dropped_docs = sum(p.documents_dropped for p in packers.values())
    return {
        "documents_in": count["documents"],
        "documents_windowed": count["documents"] - dropped_docs,
        "documents_dropped": dropped_docs,
        "windows": count["windows"],
        "windows_val": count["val_windows"],
        "tokens_in": count["tokens_in"],
        "tokens": count["windows"] * width,
        "tokens_dropped": sum(p.tokens_dropped for p in packers.values()),
        "seq_len": config.seq_len,
        "dtype": np.dtype(dtype).name,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "tokenizer_sha256": tok.sha256,
        "parts": bins.close(),
    }
