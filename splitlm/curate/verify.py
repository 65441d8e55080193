"""`curate verify RUN`: check every file of a run against the manifest that wrote it.

Each stage folder's manifest lists the sha256 of every file the stage wrote. Verification re-hashes
them all (tokens, vectors, shards: the big files too), flags files no manifest lists, and checks
the structure the hashes cannot: each token array's size against its header, the header's sha256
against the bytes (every part of a parted array: its file against the part's sha256, the header's
sha256 against the parts' digests), and each `.npy` (every vector part) against its file size. Every stage runs the structural
check (`structure_problems`) on its own outputs before it writes its manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from splitlm.core.errors import SchemaError
from splitlm.core.stage import MANIFEST, file_problems
from splitlm.schemas.layout import STAGES, RunLayout
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tokens import TokenArray, parts_digest

OPTIONAL = ("routing", "inspect")  # stages a finished run may or may not have


@dataclass
class Verified:
    stages: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


def structure_problems(folder: Path, parts: dict[str, str]) -> list[str]:
    """Token arrays and `.npy` files under `folder` that disagree with their own headers or `parts`."""
    problems = []
    for header in sorted(folder.rglob("tokens.json")):
        try:
            array = TokenArray(header.parent)
        except (SchemaError, TypeError, ValueError) as err:
            problems.append(f"{header.parent / 'tokens.bin'}: {err}")
            continue
        files = array.header.files()
        if array.header.parts is not None and array.header.sha256 != parts_digest([sha for _, _, sha in files]):
            problems.append(f"{header}: sha256 is not the digest of its parts' sha256")
        for file, _, sha in files:
            name = str((header.parent / file).relative_to(folder))
            if name in parts and parts[name] != sha:
                problems.append(f"{header.parent / file}: sha256 differs from its tokens.json header")
    for npy in sorted(folder.rglob("*.npy")):
        try:
            np.load(npy, mmap_mode="r")
        except (ValueError, OSError) as err:
            problems.append(f"{npy}: not a complete .npy array ({err})")
    return problems


def verify_run(run: Path | str) -> Verified:
    """Every stage of `run` re-hashed and structure-checked; problems are collected, not raised."""
    layout = RunLayout(run)
    if not layout.manifest.exists():
        raise SchemaError(f"{layout.root}: not a run folder (no manifest.json); give the --out of `curate cluster`")
    clustered = any(layout.stage(s).exists() for s in STAGES[3:])  # `curate cluster`, not just `windows`
    required = STAGES if clustered else STAGES[:3]
    out = Verified()
    for stage in (*STAGES, *OPTIONAL):
        folder = layout.stage(stage)
        if not (folder / MANIFEST).exists():
            if stage in required:
                out.problems.append(f"{folder / MANIFEST}: missing (the stage never finished)")
            continue
        manifest = StageManifest.read(folder)
        out.stages.append(stage)
        out.files += len(manifest.parts)
        out.bytes += sum((folder / name).stat().st_size for name in manifest.parts if (folder / name).is_file())
        out.problems += file_problems(folder, manifest.parts) + structure_problems(folder, manifest.parts)
    return out
