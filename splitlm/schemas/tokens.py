"""Token arrays: raw little-endian `.bin` rows of shape [rows, seq_len + 1] plus a small JSON header.

Ids are uint16 when the vocabulary fits, else uint32. `tokens.json` records dtype, rows, width
(seq_len + 1) and a sha256. Two layouts, told apart by the header:
- one file (shards, small runs): `tokens.bin`, `sha256` is that file's hash, no `parts` field;
- parts (large windows stages): `tokens-00000.bin`, `tokens-00001.bin`, ... in row order, the header's
  `parts` lists each one as {"file", "rows", "sha256"} and `sha256` is the sha256 of the parts'
  hex digests joined by newlines (so checking it never re-reads the data twice).
Opening is a zero-copy memmap per file; several parts are read through one `PartedRows` view, so
random access to any window costs one page read and memory stays constant.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from splitlm.core.errors import SchemaError
from splitlm.core.parted import PartedRows

SINGLE = "tokens.bin"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def part_name(index: int) -> str:
    return f"tokens-{index:05d}.bin"


def parts_digest(shas: list[str]) -> str:
    """The header sha256 of a parted array: over its parts' digests, in order."""
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


@dataclass(frozen=True)
class TokenHeader:
    dtype: str  # "uint16" | "uint32"
    rows: int
    width: int  # seq_len + 1
    sha256: str
    parts: list[dict] | None = None  # [{"file", "rows", "sha256"}] in row order; None = one tokens.bin

    def files(self) -> list[tuple[str, int, str]]:
        """(file name, rows, sha256) of every file holding rows, in row order."""
        if self.parts is None:
            return [(SINGLE, self.rows, self.sha256)]
        return [(p["file"], int(p["rows"]), p["sha256"]) for p in self.parts]


class TokenArray:
    """Read-only view of the token rows in `DIR` described by `DIR/tokens.json`."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        header_path = self.folder / "tokens.json"
        if not header_path.exists():
            raise SchemaError(f"{header_path}: missing token-array header")
        self.header = TokenHeader(**json.loads(header_path.read_text()))
        if self.header.dtype not in ("uint16", "uint32"):
            raise SchemaError(f"{header_path}: unknown dtype {self.header.dtype!r}")
        dtype = np.dtype(self.header.dtype).newbyteorder("<")
        files = self.header.files()
        if sum(rows for _, rows, _ in files) != self.header.rows:
            raise SchemaError(f"{header_path}: parts hold {sum(r for _, r, _ in files)} rows, header says {self.header.rows}")
        arrays = []
        for name, rows, _ in files:
            path = self.folder / name
            expected = rows * self.header.width * dtype.itemsize
            if not path.exists() or path.stat().st_size != expected:
                raise SchemaError(f"{path}: expected {expected} bytes for {rows} rows of {self.header.width} "
                                  f"{self.header.dtype} ids")
            shape = (rows, self.header.width)
            # An empty file cannot be memory-mapped; an empty array stands in.
            arrays.append(np.memmap(path, dtype=dtype, mode="r", shape=shape) if expected else np.zeros(shape, dtype))
        self.tokens = arrays[0] if len(arrays) == 1 else PartedRows(arrays)

    def __len__(self) -> int:
        return self.header.rows

    def __getitem__(self, i):
        return self.tokens[i]

    @property
    def seq_len(self) -> int:
        return self.header.width - 1

    @property
    def paths(self) -> list[Path]:
        return [self.folder / name for name, _, _ in self.header.files()]


def write_header(folder: Path, dtype: np.dtype, rows: int, width: int, sha256: str,
                 parts: list[dict] | None = None) -> None:
    """`tokens.json` for one `tokens.bin` (sha256 = its hash), or for `parts` (see the module docstring)."""
    header = TokenHeader(dtype=np.dtype(dtype).name, rows=rows, width=width, sha256=sha256, parts=parts)
    data = asdict(header)
    if parts is None:
        del data["parts"]  # the one-file header stays exactly what it always was
    (folder / "tokens.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class TokenWriter:
    """Appends rows to `tokens-00000.bin`, `tokens-00001.bin`, ... of `rows_per_part` rows each.

    `close()` returns the parts as the header lists them; `finish(folder, parts)` writes the header
    (renaming a lone part to `tokens.bin`, the one-file layout).
    """

    def __init__(self, folder: Path, dtype: np.dtype, width: int, rows_per_part: int):
        self.folder, self.dtype, self.width = Path(folder), np.dtype(dtype), width
        self.rows_per_part = max(1, rows_per_part)
        self.parts: list[dict] = []
        self._fh, self._digest, self._rows = None, None, 0

    def write(self, tokens_W: np.ndarray) -> None:
        if self._fh is None:
            self._fh = open(self.folder / part_name(len(self.parts)), "wb")  # noqa: SIM115 (closed per part)
            self._digest, self._rows = hashlib.sha256(), 0
        data = tokens_W.astype(self.dtype).tobytes()
        self._fh.write(data)
        self._digest.update(data)
        self._rows += 1
        if self._rows >= self.rows_per_part:
            self._close_part()

    def _close_part(self) -> None:
        self._fh.close()
        self.parts.append({"file": part_name(len(self.parts)), "rows": self._rows, "sha256": self._digest.hexdigest()})
        self._fh = None

    def close(self) -> list[dict]:
        if self._fh is not None:
            self._close_part()
        return self.parts


def finish(folder: Path, dtype: np.dtype, width: int, parts: list[dict]) -> None:
    """The header of `parts` (files already named `tokens-XXXXX.bin` in `folder`); none or one part
    becomes a plain `tokens.bin`."""
    rows = sum(p["rows"] for p in parts)
    if len(parts) <= 1:
        single = folder / SINGLE
        if parts:
            (folder / parts[0]["file"]).replace(single)
        else:
            single.write_bytes(b"")
        sha = parts[0]["sha256"] if parts else hashlib.sha256(b"").hexdigest()
        write_header(folder, dtype, rows, width, sha)
    else:
        write_header(folder, dtype, rows, width, parts_digest([p["sha256"] for p in parts]), parts)
