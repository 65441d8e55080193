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

Output: `tokens.bin` [windows, seq_len + 1] (uint16 for vocabularies up to 65,536, else uint32)
with `tokens.json`, and `windows-*.parquet` (schema WINDOWS) with every window's provenance.
Tokenizing the next batch overlaps with packing the current one (the Rust tokenizer releases the GIL).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.core.parts import PartWriter
from splitlm.curate.stats import ranked_labels
from splitlm.schemas.tables import WINDOWS
from splitlm.schemas.tokens import token_dtype, write_header
from splitlm.tokenizer import load_tokenizer

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)

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

    def __post_init__(self):
        if self.seq_len < 1:
            raise ConfigError(f"--seq-len must be >= 1, got {self.seq_len}")
        if self.policy not in POLICIES:
            raise ConfigError(f"--policy must be one of {POLICIES}, got {self.policy!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


def is_val(doc_id: str, seed: int, fraction: float) -> bool:
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


@dataclass
class _Segment:
    tokens: np.ndarray
    piece: dict  # a PIECE struct without `offset`
    domain: str | None
    first: bool  # holds the document's first token


class Packer:
    """Cuts one stream (train or val) into windows; calls `emit(tokens_W, segments)` per window."""

    def __init__(self, width: int, policy: str, emit: Callable[[np.ndarray, list[_Segment]], None]):
        self.width, self.policy, self.emit = width, policy, emit
        self.pending: list[_Segment] = []
        self.fill = 0
        self.tokens_dropped = 0
        self.documents_dropped = 0

    def add(self, tokens: np.ndarray, doc: dict, spans: "CharSpans", domain: str | None) -> None:
        n, start = len(tokens), 0
        if self.policy == "drop":
            usable = n - n % self.width
            self.tokens_dropped += n - usable
            if usable == 0:
                self.documents_dropped += 1
                return
            n = usable
        text_tokens = len(tokens) - 1  # the last token is the EOS the packer appended
        while start < n:
            take = min(self.width - self.fill, n - start)
            end = start + take
            piece = {
                "doc_id": doc["doc_id"], "source": doc["source"], "token_start": start, "token_end": end,
                "char_start": spans.start(start) if start < text_tokens else len(doc["text"]),
                "char_end": spans.end(end - 1) if end - 1 < text_tokens else len(doc["text"]),
            }
            self.pending.append(_Segment(tokens[start:end], piece, domain, start == 0))
            self.fill += take
            start = end
            if self.fill == self.width:
                self.emit(np.concatenate([s.tokens for s in self.pending]), self.pending)
                self.pending, self.fill = [], 0

    def finish(self) -> None:
        """Drop the final partial window (concat); count documents that never reached a window."""
        self.tokens_dropped += self.fill
        self.documents_dropped += sum(s.first for s in self.pending)
        self.pending, self.fill = [], 0


class CharSpans:
    """Character offsets of a document's tokens, computed only for the few tokens that need them.

    Byte-level BPE (GPT-2): a token's bytes are its vocabulary string's length, so an offset is a
    cumulative byte count, mapped to characters (the same number for ASCII text). This lets the
    stage use the tokenizer's fast path, which computes no offsets. Other tokenizers use the
    offsets of a full encode.
    """

    def __init__(self, text: str, encoding, byte_lengths: np.ndarray | None):
        self.text, self.encoding, self.byte_lengths = text, encoding, byte_lengths
        self._cum = None

    def _char(self, byte_offset: int) -> int:
        if self.text.isascii():
            return byte_offset
        return len(self.text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))

    def _bytes_before(self, i: int) -> int:
        if self._cum is None:
            ids = np.asarray(self.encoding.ids, dtype=np.int64)
            self._cum = np.concatenate([[0], np.cumsum(self.byte_lengths[ids])])
        return int(self._cum[i])

    def start(self, i: int) -> int:
        if self.byte_lengths is None:
            return self.encoding.token_to_chars(i)[0]
        return self._char(self._bytes_before(i)) if i else 0

    def end(self, i: int) -> int:
        """Character end of token i; a token ending inside a multi-byte character counts it."""
        if self.byte_lengths is None:
            return self.encoding.token_to_chars(i)[1]
        byte_end = self._bytes_before(i + 1)
        if self.text.isascii():
            return byte_end
        # a trailing partial character decodes to one replacement character, so it counts
        return len(self.text.encode("utf-8")[:byte_end].decode("utf-8", errors="replace"))


def window_row(window_id: int, split: str, segments: list[_Segment]) -> dict[str, Any]:
    pieces, offset = [], 0
    for seg in segments:
        pieces.append({**seg.piece, "offset": offset})
        offset += len(seg.tokens)
    ranked = ranked_labels((seg.domain, len(seg.tokens)) for seg in segments)
    return {
        "window_id": window_id,
        "split": split,
        "domain": ranked[0][0] if ranked else None,
        "domain_mix": [{"label": k, "tokens": v} for k, v in ranked],
        "pieces": pieces,
    }


def _encoded_batches(batches: Iterator[list[dict]], tokenizer) -> Iterator[tuple[list[dict], list]]:
    """Yield (docs, encodings), encoding batch i+1 in a thread while the caller packs batch i."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = None
        for docs in batches:
            encode = tokenizer.tokenizer.encode_batch_fast if tokenizer.byte_lengths is not None else \
                tokenizer.tokenizer.encode_batch
            nxt = pool.submit(encode, [d["text"] for d in docs], add_special_tokens=False)
            if future is not None:
                yield future
            future = (docs, nxt)
        if future is not None:
            yield future


def write_windows(batches: Iterator[list[dict]], out: Path, config: WindowsConfig, advance=lambda n: None) -> dict:
    """The windows stage over batches of document rows (doc_id, text, domain, source)."""
    tok = load_tokenizer(config.tokenizer)
    dtype, width = token_dtype(tok.vocab_size), config.seq_len + 1
    rows = PartWriter(out, "windows", WINDOWS, rows_per_group=1024)
    digest, count = hashlib.sha256(), {"windows": 0, "val_windows": 0, "documents": 0, "tokens_in": 0}
    with open(out / "tokens.bin", "wb") as bin_fh:

        def emitter(split: str):
            def emit(tokens_W: np.ndarray, segments: list[_Segment]) -> None:
                data = tokens_W.astype(dtype).tobytes()
                bin_fh.write(data)
                digest.update(data)
                rows.write(window_row(count["windows"], split, segments))
                count["windows"] += 1
                count["val_windows"] += split == "val"
            return emit

        packers = {s: Packer(width, config.policy, emitter(s)) for s in ("train", "val")}
        eos = np.array([tok.eos_id], dtype=np.int64)
        for docs, future in _encoded_batches(batches, tok):
            for doc, enc in zip(docs, future.result()):
                tokens = np.concatenate([np.asarray(enc.ids, dtype=np.int64), eos])
                count["documents"] += 1
                count["tokens_in"] += len(tokens)
                split = "val" if is_val(doc["doc_id"], config.seed, config.val_fraction) else "train"
                packers[split].add(tokens, doc, CharSpans(doc["text"], enc, tok.byte_lengths), doc["domain"])
            advance(len(docs))
        for packer in packers.values():
            packer.finish()
    rows.close()
    write_header(out, dtype, count["windows"], width, digest.hexdigest())
    dropped_docs = sum(p.documents_dropped for p in packers.values())
    dropped_tokens = sum(p.tokens_dropped for p in packers.values())
    return {
        "documents_in": count["documents"],
        "documents_windowed": count["documents"] - dropped_docs,
        "documents_dropped": dropped_docs,
        "windows": count["windows"],
        "windows_val": count["val_windows"],
        "tokens_in": count["tokens_in"],
        "tokens": count["windows"] * width,
        "tokens_dropped": dropped_tokens,
        "seq_len": config.seq_len,
        "dtype": np.dtype(dtype).name,
        "vocab_size": tok.vocab_size,
        "eos_id": tok.eos_id,
        "tokenizer_sha256": tok.sha256,
    }
