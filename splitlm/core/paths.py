"""Checks on output paths, made before any work so a bad `--out` costs nothing.

`out_folder` and `out_file` refuse a path whose kind is wrong (a file where a folder should go, or
the reverse) or that lies under a file; `inside` tells whether a path lies in a folder (the
self-overwrite checks: a run folder inside its input, a routed file written over the corpus).
"""

from __future__ import annotations

from pathlib import Path

from splitlm.core.errors import ConfigError


def _parents_are_folders(path: Path, flag: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {path}: {parent} is a file, so nothing can be written under it")
            return


def out_folder(path: Path, flag: str = "--out") -> Path:
    """`path` as an output folder: absent or a folder, and not under a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is an existing file; give a folder path")
    _parents_are_folders(path, flag)
    return path


def out_file(path: Path, flag: str = "--out") -> Path:
    """`path` as an output file: absent or a file, and not under a file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder; give a file path")
    _parents_are_folders(path, flag)
    return path


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it, after resolving links."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or path.is_relative_to(folder)
