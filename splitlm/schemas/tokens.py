"""Token arrays: a raw little-endian `.bin` of shape [rows, seq_len + 1] plus a small JSON header.

`tokens.bin` holds uint16 ids when the vocabulary fits, else uint32; `tokens.json` records
dtype, rows, width (seq_len + 1) and the sha256 of the bin. Opening is a zero-copy memmap, so
random access to any window costs one page read and memory stays constant.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from splitlm.core.errors import SchemaError


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


@dataclass(frozen=True)
class TokenHeader:
    dtype: str  # "uint16" | "uint32"
    rows: int
    width: int  # seq_len + 1
    sha256: str


class TokenArray:
    """Read-only view of `DIR/tokens.bin` described by `DIR/tokens.json`."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        header_path = self.folder / "tokens.json"
        if not header_path.exists():
            raise SchemaError(f"{header_path}: missing token-array header")
        self.header = TokenHeader(**json.loads(header_path.read_text()))
        if self.header.dtype not in ("uint16", "uint32"):
            raise SchemaError(f"{header_path}: unknown dtype {self.header.dtype!r}")
        dtype = np.dtype(self.header.dtype).newbyteorder("<")
        bin_path = self.folder / "tokens.bin"
        expected = self.header.rows * self.header.width * dtype.itemsize
        if not bin_path.exists() or bin_path.stat().st_size != expected:
            raise SchemaError(f"{bin_path}: expected {expected} bytes for {self.header}")
        shape = (self.header.rows, self.header.width)
        # An empty file cannot be memory-mapped; an empty array stands in.
        self.tokens = (
            np.memmap(bin_path, dtype=dtype, mode="r", shape=shape) if expected else np.zeros(shape, dtype)
        )

    def __len__(self) -> int:
        return self.header.rows

    def __getitem__(self, i):
        return self.tokens[i]

    @property
    def seq_len(self) -> int:
        return self.header.width - 1


def write_header(folder: Path, dtype: np.dtype, rows: int, width: int, sha256: str) -> None:
    header = TokenHeader(dtype=np.dtype(dtype).name, rows=rows, width=width, sha256=sha256)
    (folder / "tokens.json").write_text(json.dumps(asdict(header), indent=2, sort_keys=True) + "\n")
