"""Packing: cut a stream of documents' tokens into windows, with each window's provenance.

A document arrives as consecutive pieces of tokens (its whole text at once, or chunk by chunk for a
long one, then its EOS); each piece carries the character spans of its tokens. Consecutive pieces
of one document inside a window make one provenance piece, so the windows and their rows do not
depend on how the document was chunked. See `splitlm.curate.windows` for the policies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from splitlm.curate.stats import ranked_labels


@dataclass
class Segment:
    tokens: np.ndarray
    piece: dict  # a PIECE struct without `offset`
    domain: str | None
    first: bool  # holds the document's first token


class CharSpans:
    """Character offsets of a text's tokens, computed only for the few tokens that need them.

    Byte-level BPE (GPT-2): a token's bytes are its vocabulary string's length, so an offset is a
    cumulative byte count, mapped to characters (the same number for ASCII text). This lets the
    stage use the tokenizer's fast path, which computes no offsets. Other tokenizers use the
    offsets of a full encode. `text` may be a chunk of a document starting at character `offset`;
    offsets are then the document's.
    """

    def __init__(self, text: str, encoding, byte_lengths: np.ndarray | None, offset: int = 0):
        self.text, self.encoding, self.byte_lengths, self.offset = text, encoding, byte_lengths, offset
        self._cum = None
        self._utf8: bytes | None = None

    def _prefix(self, byte_offset: int, errors: str) -> int:
        """Characters in the text's first `byte_offset` UTF-8 bytes, a partial one `ignore`d or counted."""
        if self._utf8 is None:
            self._utf8 = self.text.encode("utf-8")
        return len(self._utf8[:byte_offset].decode("utf-8", errors=errors))

    def _char(self, byte_offset: int) -> int:
        if self.text.isascii():
            return byte_offset
        return self._prefix(byte_offset, "ignore")

    def _bytes_before(self, i: int) -> int:
        if self._cum is None:
            ids = np.asarray(self.encoding.ids, dtype=np.int64)
            self._cum = np.concatenate([[0], np.cumsum(self.byte_lengths[ids])])
        return int(self._cum[i])

    def start(self, i: int) -> int:
        if self.byte_lengths is None:
            return self.offset + self.encoding.token_to_chars(i)[0]
        return self.offset + (self._char(self._bytes_before(i)) if i else 0)

    def end(self, i: int) -> int:
        """Character end of token i; a token ending inside a multi-byte character counts it."""
        if self.byte_lengths is None:
            return self.offset + self.encoding.token_to_chars(i)[1]
        byte_end = self._bytes_before(i + 1)
        if self.text.isascii():
            return self.offset + byte_end
        # a trailing partial character decodes to one replacement character, so it counts
        return self.offset + self._prefix(byte_end, "replace")


class EndSpans:
    """Spans of the EOS the packer appends: it sits at the end of the text."""

    def __init__(self, text_chars: int):
        self.text_chars = text_chars

    def start(self, i: int) -> int:
        return self.text_chars

    def end(self, i: int) -> int:
        return self.text_chars


class Packer:
    """Cuts one stream (train or val) into windows; calls `emit(tokens_W, segments)` per window."""

    def __init__(self, width: int, policy: str, emit: Callable[[np.ndarray, list[Segment]], None]):
        self.width, self.policy, self.emit = width, policy, emit
        self.pending: list[Segment] = []
        self.fill = 0
        self.windows = 0
        self.tokens_dropped = 0
        self.documents_dropped = 0

    def add(self, doc: dict, domain: str | None, pieces: Iterable[tuple[np.ndarray, Any]]) -> int:
        """Pack one document given as (tokens, spans) pieces; returns its token count."""
        windows_before, pos = self.windows, 0
        for tokens, spans in pieces:
            self._feed(doc, domain, tokens, spans, pos)
            pos += len(tokens)
        if self.policy == "drop":  # each document on its own: its short tail goes
            self.tokens_dropped += self.fill
            self.documents_dropped += self.windows == windows_before
            self.pending, self.fill = [], 0
        return pos

    def _feed(self, doc: dict, domain: str | None, tokens: np.ndarray, spans, pos: int) -> None:
        start, n = 0, len(tokens)
        while start < n:
            take = min(self.width - self.fill, n - start)
            end = start + take
            if start == 0 and pos > 0 and self.pending:  # the document goes on in the same window
                seg = self.pending[-1]
                seg.tokens = np.concatenate([seg.tokens, tokens[:end]])
                seg.piece["token_end"], seg.piece["char_end"] = pos + end, spans.end(end - 1)
            else:
                piece = {"doc_id": doc["doc_id"], "source": doc["source"], "token_start": pos + start,
                         "token_end": pos + end, "char_start": spans.start(start), "char_end": spans.end(end - 1)}
                self.pending.append(Segment(tokens[start:end], piece, domain, pos + start == 0))
            self.fill += take
            start = end
            if self.fill == self.width:
                self.emit(np.concatenate([s.tokens for s in self.pending]), self.pending)
                self.pending, self.fill = [], 0
                self.windows += 1

    def finish(self) -> None:
        """Drop the final partial window (concat); count documents that never reached a window."""
        self.tokens_dropped += self.fill
        self.documents_dropped += sum(s.first for s in self.pending)
        self.pending, self.fill = [], 0


def window_row(window_id: int, split: str, segments: list[Segment]) -> dict[str, Any]:
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
