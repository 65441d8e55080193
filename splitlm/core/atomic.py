"""Atomic outputs: a file or folder appears under its final name complete, or not at all.

Everything is first written beside its target under a hidden temporary name, then moved into
place with `os.replace`, which is atomic on one filesystem. A kill leaves at most a hidden
temporary behind, which the next writer of that target replaces.

Published files get the mode `open()` gives under the process's umask (usually 0644), whatever
wrote them: safetensors, for one, creates its files 0600.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""The mode of a new file under the umask this process started with."""


def _share(path: Path) -> None:
    """Give `path` (a file, or every file under a folder) FILE_MODE."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        os.chmod(file, FILE_MODE)


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        _share(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink() if tmp.is_file() else shutil.rmtree(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def publish_folder(partial: Path, final: Path) -> None:
    """Move a finished `partial` folder to `final`, replacing an older `final` without a gap."""
    _share(partial)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)


def fresh_folder(path: Path) -> Path:
    """An empty folder at `path` (anything there before is removed)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
