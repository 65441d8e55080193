"""Stage mechanics: a stage writes into a hidden partial folder, then renames it into place.

A stage's folder is complete exactly when its `manifest.json` exists; the manifest is written last
and the folder is renamed atomically, so nothing half-written is ever visible under a final name.
A rerun whose config hash and input fingerprint match the manifest skips the stage. Stages that
resume mid-way (embedding) keep their finished parts in `RUN/.work/<stage>/`, outside the partial
folder, and delete them once the stage is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable

from splitlm.schemas.manifest import StageManifest

MANIFEST = "manifest.json"


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_dict(config: Any) -> dict[str, Any]:
    data = asdict(config) if is_dataclass(config) else dict(config)
    return json.loads(json.dumps(data, default=str))  # canonical: tuples -> lists, paths -> str


def library_versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("splitlm", *names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def is_current(folder: Path, config_hash: str, input_fingerprint: str) -> StageManifest | None:
    """The manifest of `folder` if it is complete and was made from this config and input."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    manifest = StageManifest.read(path)
    if manifest.config_hash == config_hash and manifest.input_fingerprint == input_fingerprint:
        return manifest
    return None


def run_stage(
    run_dir: Path,
    stage: str,
    config: Any,
    input_fingerprint: str,
    build: Callable[[Path], dict[str, Any]],
    seed: int = 0,
    versions: tuple[str, ...] = (),
) -> tuple[StageManifest, bool]:
    """Run `build(partial_dir) -> counts` unless `run_dir/stage` is already current.

    Returns (manifest, ran). Every file `build` leaves in the folder is hashed into `parts`.
    """
    cfg = config_dict(config)
    cfg_hash = sha256_json(cfg)
    final = run_dir / stage
    done = is_current(final, cfg_hash, input_fingerprint)
    if done is not None:
        return done, False
    partial = run_dir / f".{stage}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    start = time.perf_counter()
    counts = build(partial)
    parts = {
        str(p.relative_to(partial)): sha256_file(p)
        for p in sorted(partial.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = StageManifest(
        stage=stage,
        config=cfg,
        config_hash=cfg_hash,
        input_fingerprint=input_fingerprint,
        seed=seed,
        counts=counts,
        parts=parts,
        versions=library_versions(*versions),
        wall_seconds=round(time.perf_counter() - start, 3),
    )
    atomic_write_text(partial / MANIFEST, manifest.to_json())
    if final.exists():
        old = run_dir / f".{stage}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)
    return manifest, True


def work_dir(run_dir: Path, stage: str, key: str) -> Path:
    """A resumable scratch folder for `stage`, keyed by config+input so stale parts are never reused."""
    folder = run_dir / ".work" / stage / key[:16]
    folder.mkdir(parents=True, exist_ok=True)
    return folder
