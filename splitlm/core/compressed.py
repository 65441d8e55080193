"""Open plain, gzip or zstd files as one binary stream that fails loudly when the data is damaged.

A truncated zstd stream looks like a clean end of file to a plain `stream_reader`, which is how a
cut `.jsonl.zst` used to lose its tail silently. `ZstdStream` feeds the file through one
decompression object per frame and raises `CorruptStream` if the file ends inside a frame. Every
decoder error (gzip, zlib, zstd, truncation) comes out as `CorruptStream`, so callers handle one type.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

CHUNK = 1 << 20


class CorruptStream(Exception):
    """The compressed data is truncated or damaged; the message says how."""


class ZstdStream(io.RawIOBase):
    """Raw reader over every zstd frame in a file; raises CorruptStream on a cut or bad frame."""

    def __init__(self, path: Path):
        import zstandard

        self._zstd = zstandard
        self._file = open(path, "rb")
        self._frame = None  # the current frame's decompressor; None between frames
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decode more output into `self._out`; False at a clean end of file."""
        while not self._out:
            data = (self._frame.unused_data if self._frame is not None and self._frame.eof else b"") \
                or self._file.read(CHUNK)
            if not data:
                if self._frame is not None and not self._frame.eof:
                    raise CorruptStream("the file ends inside a zstd frame (truncated)")
                return False
            if self._frame is None or self._frame.eof:
                self._frame = self._zstd.ZstdDecompressor().decompressobj()
            try:
                self._out = memoryview(self._frame.decompress(data))
            except self._zstd.ZstdError as err:
                raise CorruptStream(f"zstd: {err}") from err
        return True

    def readinto(self, buffer) -> int:
        if not self._fill():
            return 0
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class _Checked(io.BufferedReader):
    """A buffered reader that turns gzip/zlib decoder errors into CorruptStream."""

    def _guard(self, method, *args):
        try:
            return method(*args)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise CorruptStream(f"gzip: {err}") from err

    def read(self, *args):
        return self._guard(super().read, *args)

    def readline(self, *args):
        return self._guard(super().readline, *args)

    def __next__(self):
        return self._guard(super().__next__)


def open_stream(path: Path) -> io.BufferedIOBase:
    """A binary stream of the file's decompressed bytes, chosen by its suffix (.gz, .zst, else plain)."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return _Checked(gzip.open(path, "rb"))
    if name.endswith(".zst"):
        return io.BufferedReader(ZstdStream(path), CHUNK)
    return open(path, "rb")
