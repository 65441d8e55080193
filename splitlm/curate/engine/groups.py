"""File groups: the unit of work of the per-part maps, planned once by the documents stage.

Input files are taken in their stable order and cut into consecutive groups of about `part_mb`
megabytes of input (a larger file is a group on its own; files are never split). Every stage up to
windows writes one set of parts per group into `RUN/.work/<stage>/<key>/group-GGGGG/`, finished by
a `done.json` written last, so a rerun redoes exactly the groups without one; the stage's barrier
then links the groups' parts into the stage folder under global, gap-free part numbers.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from splitlm.core.atomic import atomic_write_text

DONE = "done.json"


def plan_groups(sizes: list[int], part_mb: float) -> list[tuple[int, int]]:
    """[lo, hi) file ranges of consecutive files, each about `part_mb` MB of input (at least one file)."""
    limit, groups, lo, total = part_mb * 2**20, [], 0, 0
    for i, size in enumerate(sizes):
        if i > lo and total + size > limit:
            groups.append((lo, i))
            lo, total = i, 0
        total += size
    if sizes:
        groups.append((lo, len(sizes)))
    return groups


def group_dir(scratch: Path, group: int) -> Path:
    return scratch / f"group-{group:05d}"


def read_done(folder: Path) -> dict[str, Any] | None:
    """The result a finished group recorded, or None when it must (re)run."""
    path = folder / DONE
    return json.loads(path.read_text()) if path.exists() else None


def fresh_group(folder: Path) -> Path:
    """An empty folder for a group about to run (what an interrupted try left is removed)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@contextmanager
def attempt(folder: Path) -> Iterator[Path]:
    """Run a group into a fresh `folder`; if it fails, nothing of it stays (nor scratch folders it
    leaves empty, up to `RUN/.work`), while other groups' finished parts stay for the rerun."""
    fresh_group(folder)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        _prune(folder.parents[:3])  # <key>/, <stage>/, .work/
        raise


def remove_scratch(scratch: Path) -> None:
    """A completed stage's scratch folder, and `<stage>/` and `.work/` when that leaves them empty."""
    shutil.rmtree(scratch, ignore_errors=True)
    _prune(scratch.parents[:2])


def _prune(folders) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def mark_done(folder: Path, result: dict[str, Any]) -> dict[str, Any]:
    result = {**result, "pid": os.getpid()}
    atomic_write_text(folder / DONE, json.dumps(result, sort_keys=True) + "\n")
    return result


def link(src: Path, dst: Path) -> None:
    """`dst` becomes `src`'s bytes: a hard link on the same filesystem, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
