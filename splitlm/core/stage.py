"""The stage runner: a stage's folder is complete exactly when its manifest exists.

A stage builds into a hidden partial folder beside its final one, writes its manifest last and
is renamed into place, so nothing half-written is ever visible under a final name. Before
building, `current(final)` says whether the folder already holds this stage's output for this
config, algorithm and input (then nothing runs). A build that fails removes its partial folder. What a manifest holds is the caller's contract
(`splitlm.schemas.manifest`); this module only needs it to render itself with `to_json()`.
Stages that resume mid-way keep finished parts in a scratch folder keyed by config and input
(`work_dir`), outside the partial folder, and delete it once the stage is complete.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Protocol, TypeVar

from splitlm.core.atomic import atomic_write_text, fresh_folder, publish_folder
from splitlm.core.hashing import sha256_file

MANIFEST = "manifest.json"


class Record(Protocol):
    def to_json(self) -> str: ...


R = TypeVar("R", bound=Record)


def run_stage(final: Path, current: Callable[[Path], R | None], build: Callable[[Path], R]) -> tuple[R, bool]:
    """(record, ran): `current(final)` if it is not None, else `build(partial)` published as `final`."""
    done = current(final)
    if done is not None:
        return done, False
    partial = fresh_folder(final.with_name(f".{final.name}.partial"))
    try:
        record = build(partial)
    except BaseException:  # a failed or interrupted build leaves nothing half-written behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    atomic_write_text(partial / MANIFEST, record.to_json())
    publish_folder(partial, final)
    return record, True


def stage_files(folder: Path) -> list[str]:
    """Relative paths of every file under `folder` but its manifest, sorted."""
    return [str(p.relative_to(folder)) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST]


def hash_files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` but its manifest."""
    return {name: sha256_file(folder / name) for name in stage_files(folder)}


def file_problems(folder: Path, parts: dict[str, str], names: list[str] | None = None) -> list[str]:
    """`path: problem` for each file of `folder` that differs from its recorded sha256.

    With `names`, only those files (cheap checks of small artifacts on load); without, every
    recorded part, plus files that no manifest lists.
    """
    problems = []
    for name in names if names is not None else sorted(parts):
        path = folder / name
        if name not in parts:
            problems.append(f"{path}: not listed in {folder / MANIFEST}")
        elif not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != parts[name]:
            problems.append(f"{path}: sha256 differs from {folder / MANIFEST} (changed after it was written)")
    if names is None:
        extra = sorted(set(stage_files(folder)) - set(parts))
        problems += [f"{folder / name}: not listed in {folder / MANIFEST}" for name in extra]
    return problems


def library_versions(*names: str) -> dict[str, str]:
    out = {}
    for name in ("splitlm", *names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def work_dir(run_dir: Path, stage: str, key: str) -> Path:
    """A resumable scratch folder for `stage`, keyed by config+input so stale parts are never reused."""
    folder = run_dir / ".work" / stage / key[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder
