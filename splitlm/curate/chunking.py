"""Chunks of long texts that tokenize and shingle exactly like the whole text, so memory stays bounded.

Token chunks (`token_cuts`) end where GPT-2 pre-tokenisation cannot merge across the cut. The
regex (`splitlm.tokenizer.GPT2_PATTERN`) has no lookbehind, so the pieces after a cut are the
same as in the whole text if the cut is a piece boundary there; and the pieces before it are the
same if the last one does not depend on what follows. Both hold at a cut p where:
- text[p] is ASCII whitespace (space, tab, newline, carriage return) and text[p - 1] is not
  whitespace: no piece holds a non-space followed by a space (` ?\\p{L}+` and its kin take a space
  only in front, contractions hold none), and no whitespace piece ends at p, so no lookahead
  `(?!\\S)` looks at text[p]. "Not whitespace" is checked conservatively: not Python's `\\s` (a
  superset of the regex engine's: it adds U+001C..U+001F, a test checks every code point), and
  printable (letters, marks, numbers, punctuation, symbols: never whitespace in any Unicode
  version, should the engine's tables be of another version than Python's).
- text[p - 1] and text[p] are ASCII characters of different classes among letter, digit and other
  non-space (punctuation), except an apostrophe followed by a letter (`'s`, `'ll`, ... cross it);
  or one is a Han, hiragana or katakana letter and the other CJK punctuation (`。`, `、`, `，`, ...),
  characters whose classes no Unicode version changed. Greedy runs stop at the class change on
  both sides.
A stretch of more than `size` characters with no such cut (a run of letters, digits, punctuation or
whitespace; text in another script without spaces, newlines or those punctuation marks) is one
chunk up to the next cut: still exact, but memory then grows with that stretch.

Word chunks (`word_blocks`) end before a whitespace character, so their words are `str.split()`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from splitlm.tokenizer import LoadedTokenizer

CHUNK_CHARS = 1 << 16
"""Characters per chunk (a chunk ends at the last cut before this many characters, see above)."""
ENCODE_CHARS = 1 << 19
"""Characters per call to the tokenizer: several chunks of a long document, or a run of short ones."""

_OTHER = r"\x21-\x26\x28-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e"  # ASCII punctuation and symbols but the apostrophe
# Han, hiragana, katakana letters and CJK punctuation, all in Unicode since 1.1 with these categories
CJK_LETTERS = "\u4e00-\u9fa5\u3041-\u3094\u30a1-\u30fa"
CJK_PUNCTUATION = "\u3001\u3002\u300c-\u300f\uff01\uff08\uff09\uff0c\uff0e\uff1a\uff1b\uff1f"
_CLASS_CHANGE = (rf"[A-Za-z][0-9'{_OTHER}]|[0-9][A-Za-z'{_OTHER}]|[{_OTHER}][A-Za-z0-9]|'[0-9]"
                 rf"|[{CJK_LETTERS}][{CJK_PUNCTUATION}]|[{CJK_PUNCTUATION}][{CJK_LETTERS}]")
_CUT = rf"([^\s])[ \t\n\r]|{_CLASS_CHANGE}"  # the cut falls before the pair's last character
_LAST_CUT = re.compile(rf"(?s:.*)(?:{_CUT})")
_NEXT_CUT = re.compile(_CUT)
_WHITESPACE = re.compile(r"\s")


def _valid(match: re.Match) -> bool:
    """A whitespace cut needs a printable character before it (see the module docstring)."""
    return match.group(1) is None or match.group(1).isprintable()


def _cut(text: str, start: int, size: int) -> int:
    """The end of the chunk starting at `start`: the last cut in (start, start + size], else the next one."""
    end = start + size + 1
    while (match := _LAST_CUT.match(text, start, end)) is not None:
        if _valid(match):
            return match.end() - 1
        end = match.end() - 1
    pos = start + size
    while (match := _NEXT_CUT.search(text, pos)) is not None:
        if _valid(match):
            return match.end() - 1
        pos = match.start() + 1
    return len(text)


def token_cuts(text: str, size: int = CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive chunks covering `text`; each tokenizes as that part of the whole text."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    start = 0
    while start < len(text):
        end = len(text) if len(text) - start <= size else _cut(text, start, size)
        yield start, end
        start = end


def encode_chunks(tok: LoadedTokenizer, text: str, size: int = CHUNK_CHARS,
                  per_call: int = ENCODE_CHARS) -> Iterator[tuple[int, str, object]]:
    """(char_start, chunk text, Encoding) per chunk, encoding about `per_call` characters at a time.

    The chunks' ids, concatenated, are the ids of `text` when `tok.streamable`.
    """
    cuts = token_cuts(text, size)
    group: list[tuple[int, int]] = []
    for cut in cuts:
        group.append(cut)
        if cut[1] - group[0][0] < per_call and cut[1] < len(text):
            continue
        chunks = [text[a:b] for a, b in group]
        encodings = tok.tokenizer.encode_batch_fast(chunks, add_special_tokens=False)
        yield from zip([a for a, _ in group], chunks, encodings)
        group = []


def encode_ids(tok: LoadedTokenizer, text: str, size: int = CHUNK_CHARS) -> np.ndarray:
    """The token ids of `text`, encoded chunk by chunk (for tests and benchmarks)."""
    parts = [np.asarray(enc.ids, dtype=np.int64) for _, _, enc in encode_chunks(tok, text, size)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def word_blocks(text: str, size: int = CHUNK_CHARS) -> Iterator[list[str]]:
    """`text.split()` in blocks: the words of consecutive chunks cut before a whitespace character."""
    start = 0
    while start < len(text):
        match = _WHITESPACE.search(text, start + size) if len(text) - start > size else None
        end = match.start() if match else len(text)
        words = text[start:end].split()
        if words:
            yield words
        start = end
