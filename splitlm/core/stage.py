"""The stage runner: a stage's folder is complete exactly when its manifest exists.

A stage builds into a hidden partial folder beside its final one, writes its manifest last and
is renamed into place, so nothing half-written is ever visible under a final name. Before
building, `current(final)` says whether the folder already holds this stage's output for this
config, algorithm and input (then nothing runs). What a manifest holds is the caller's contract
(`splitlm.schemas.manifest`); this module only needs it to render itself with `to_json()`.
Stages that resume mid-way keep finished parts in a scratch folder keyed by config and input
(`work_dir`), outside the partial folder, and delete it once the stage is complete.
"""

from __future__ import annotations

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
    record = build(partial)
    atomic_write_text(partial / MANIFEST, record.to_json())
    publish_folder(partial, final)
    return record, True


def hash_files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` but its manifest."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


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
