"""How one curation stage runs: its config, algorithm version and input decide whether it is current.

`run(run_dir, name, config, fingerprint, build)` skips the stage when `RUN/name/manifest.json`
records the same config hash, input fingerprint and algorithm version; otherwise `build(partial)`
returns the stage's counts, every file it wrote is hashed and structure-checked
(`splitlm.curate.verify`), and the manifest is written last (see
`splitlm.core.stage`). Each stage module declares `ALGORITHM`, an integer bumped whenever the
same config and input would give different output, so an upgrade recomputes exactly those stages
(and the ones after them whose inputs then change).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from splitlm.core import stage as core_stage
from splitlm.core.hashing import canonical, sha256_json
from splitlm.core.progress import Progress
from splitlm.curate.verify import structure_problems
from splitlm.schemas.manifest import StageManifest


def run(run_dir: Path, name: str, config: Any, input_fingerprint: str, build: Callable[[Path], dict[str, Any]],
        *, algorithm: int, seed: int = 0, versions: tuple[str, ...] = ()) -> tuple[StageManifest, bool]:
    """(manifest, ran) of stage `name` in `run_dir`."""
    cfg = canonical(config)
    cfg_hash = sha256_json(cfg)

    def current(folder: Path) -> StageManifest | None:
        return StageManifest.current(folder, cfg_hash, input_fingerprint, algorithm)

    def make(partial: Path) -> StageManifest:
        start = time.perf_counter()
        counts = build(partial)
        parts = core_stage.hash_files(partial)
        problems = structure_problems(partial, parts)  # what `curate verify` checks, before the manifest vouches
        if problems:
            raise RuntimeError(f"stage {name} wrote inconsistent outputs: {'; '.join(problems)}")
        return StageManifest(
            stage=name, config=cfg, config_hash=cfg_hash, input_fingerprint=input_fingerprint,
            algorithm=algorithm, seed=seed, counts=counts, parts=parts,
            versions=core_stage.library_versions(*versions), wall_seconds=round(time.perf_counter() - start, 3),
        )  # fmt: skip

    return core_stage.run_stage(run_dir / name, current, make)


def run_with_progress(run_dir: Path, name: str, config: Any, fingerprint: str, build, progress: Progress, *,
                      algorithm: int, total: int | None = None, versions: tuple[str, ...] = ()) -> StageManifest:
    """`run` with a progress bar: `build(out, advance)`; a skipped stage is noted as up to date."""
    with progress.stage(name, total) as advance:
        manifest, ran = run(run_dir, name, config, fingerprint, lambda out: build(out, advance), algorithm=algorithm,
                            seed=getattr(config, "seed", 0), versions=versions)
    if not ran:
        progress.note(f"{name}: up to date, skipped")
    return manifest
