"""Tokenizers: GPT-2 BPE from the offline asset, or any Hugging Face `tokenizer.json`.

`--tokenizer` accepts `gpt2` (the provisioned asset), a path to a `tokenizer.json` or to a folder
holding one, or a hub name that is already in the local Hugging Face cache (nothing is downloaded).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from splitlm.assets import gpt2_tokenizer_path
from splitlm.core.errors import ConfigError

DOC_SEPARATOR = "\n\n"
# GPT-2's pre-tokenisation regex. `splitlm.curate.chunking` cuts text only where this regex cannot
# merge across the cut, so tokenizers that pre-tokenize with it can encode long texts in chunks.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
EOS_CANDIDATES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "[SEP]")


@dataclass(frozen=True)
class LoadedTokenizer:
    name: str  # what the user asked for
    path: str  # the tokenizer.json it was loaded from
    sha256: str  # of that file
    tokenizer: Tokenizer
    eos_id: int
    vocab_size: int
    byte_lengths: np.ndarray | None = None  # bytes per token id, for byte-level BPE only
    streamable: bool = False  # pre-tokenizes with GPT2_PATTERN only: chunked encoding gives the same ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self.decode_batch([ids])[0]

    def decode_batch(self, batch) -> list[str]:
        """Texts of token sequences; an EOS (a document boundary inside a window) reads as a blank line."""
        rows = [[int(i) for i in ids] for ids in batch]
        segments, owners = [], []
        for row, ids in enumerate(rows):
            start = 0
            for pos in [p for p, t in enumerate(ids) if t == self.eos_id] + [len(ids)]:
                segments.append(ids[start:pos])
                owners.append(row)
                start = pos + 1
        texts = self.tokenizer.decode_batch(segments, skip_special_tokens=False)
        out: list[list[str]] = [[] for _ in rows]
        for row, text in zip(owners, texts):
            out[row].append(text)
        return [DOC_SEPARATOR.join(parts) for parts in out]


def _resolve(spec: str) -> Path:
    if spec == "gpt2":
        return gpt2_tokenizer_path()
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "tokenizer.json").exists():
            return path / "tokenizer.json"
        raise ConfigError(f"--tokenizer {spec}: folder has no tokenizer.json")
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(spec, "tokenizer.json")
    except Exception:  # not a valid repo id
        cached = None
    if isinstance(cached, str):
        return Path(cached)
    raise ConfigError(
        f"--tokenizer {spec}: not `gpt2`, a tokenizer.json, a folder with one, or a hub name in the local cache"
    )


def _byte_lengths(tok: Tokenizer, model: dict) -> np.ndarray | None:
    """For byte-level BPE, every vocabulary character stands for one byte of text."""
    if (model.get("decoder") or {}).get("type") != "ByteLevel":
        return None
    lengths = np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    for token, i in tok.get_vocab(with_added_tokens=False).items():
        lengths[i] = len(token)
    return lengths


def _streamable(model: dict) -> bool:
    """True when the ids of a text are the ids of its pieces, for text cut where GPT2_PATTERN cannot merge.

    That holds when nothing looks across such a cut: no normalizer, the GPT-2 regex as the only split
    (ByteLevel's own or a Split before a regex-free ByteLevel) with no prefix space added to each
    piece, no BPE dropout, no truncation or padding, and no added token that would be matched in
    text (special tokens are not: `load_tokenizer` encodes them as text). The model works per piece,
    and the post-processor adds nothing without special tokens.
    """
    pre = model.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if [s.get("type") for s in steps] == ["Split", "ByteLevel"]:
        split, byte_level = steps
        regex_ok = (split.get("pattern") == {"Regex": GPT2_PATTERN} and split.get("behavior") == "Isolated"
                    and not split.get("invert") and not byte_level.get("use_regex", True))
    elif [s.get("type") for s in steps] == ["ByteLevel"]:
        byte_level, regex_ok = steps[0], steps[0].get("use_regex", True)
    else:
        return False
    return (regex_ok and not byte_level.get("add_prefix_space", True) and model.get("normalizer") is None
            and model.get("truncation") is None and model.get("padding") is None
            and (model.get("model") or {}).get("dropout") is None
            and all(t.get("special") for t in model.get("added_tokens") or []))


@lru_cache(maxsize=8)
def load_tokenizer(spec: str = "gpt2") -> LoadedTokenizer:
    path = _resolve(spec)
    data = path.read_bytes()
    try:
        tok = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as err:
        raise ConfigError(f"--tokenizer {spec}: {path} is not a tokenizers JSON ({err})") from err
    # Text that happens to contain "<|endoftext|>" is text: only the packer inserts EOS ids.
    tok.encode_special_tokens = True
    eos = next((tok.token_to_id(t) for t in EOS_CANDIDATES if tok.token_to_id(t) is not None), None)
    if eos is None:
        raise ConfigError(f"--tokenizer {spec}: no end-of-text token among {EOS_CANDIDATES}")
    model = json.loads(tok.to_str())
    return LoadedTokenizer(
        byte_lengths=_byte_lengths(tok, model),
        streamable=_streamable(model),
        name=spec,
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        tokenizer=tok,
        eos_id=eos,
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
    )
