"""The manifest every stage writes last, via atomic rename, to mark its folder complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from splitlm.core.errors import SchemaError
from splitlm.core.hashing import sha256_json
from splitlm.core.stage import MANIFEST, file_problems


class StageManifest(BaseModel):
    stage: str
    config: dict[str, Any]  # the resolved config of the stage
    config_hash: str  # sha256 of the canonical JSON of `config`
    input_fingerprint: str  # sha256 over the inputs (files or upstream manifests)
    algorithm: int = 1  # the stage code's version: bumped when the same config and input give other output
    seed: int = 0
    counts: dict[str, Any] = Field(default_factory=dict)  # in/out/dropped with reasons
    parts: dict[str, str] = Field(default_factory=dict)  # relative path -> sha256
    versions: dict[str, str] = Field(default_factory=dict)  # library versions
    wall_seconds: float = 0.0

    @classmethod
    def read(cls, path: Path) -> StageManifest:
        """The manifest at `path` (a manifest.json or its stage folder); a SchemaError naming it otherwise."""
        path = Path(path)
        path = path / MANIFEST if path.is_dir() else path
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError) as err:
            raise SchemaError(f"{path}: not a valid stage manifest ({describe(err)})") from err

    @classmethod
    def current(cls, folder: Path, config_hash: str, input_fingerprint: str, algorithm: int) -> StageManifest | None:
        """The manifest of `folder` if it is complete and was made from this config, input and algorithm."""
        if not (folder / MANIFEST).exists():
            return None
        manifest = cls.read(folder / MANIFEST)
        same = (manifest.config_hash, manifest.input_fingerprint, manifest.algorithm)
        return manifest if same == (config_hash, input_fingerprint, algorithm) else None

    def check_files(self, folder: Path, names: list[str] | None = None) -> None:
        """Raise one SchemaError naming the files of `folder` that differ from this manifest's hashes."""
        problems = file_problems(folder, self.parts, names)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise SchemaError(problems[0] + more)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n"

    @property
    def output_fingerprint(self) -> str:
        """What downstream stages fingerprint: the config plus every part's hash, not timings.

        The algorithm version is left out on purpose: an upgrade that reproduces a stage's bytes
        does not make the stages after it recompute.
        """
        return sha256_json({"stage": self.stage, "config": self.config_hash, "parts": self.parts})


def describe(err: Exception, most: int = 3) -> str:
    """One line for an unreadable contract file: the first few fields pydantic rejected, or the parse error."""
    problems = err.errors() if isinstance(err, ValidationError) else []
    if not problems:
        lines = str(err).strip().splitlines()
        return lines[0] if lines else type(err).__name__
    parts = [f"{'.'.join(map(str, p['loc'])) or 'file'}: {p['msg']}" for p in problems[:most]]
    more = f"; {len(problems) - most} more" if len(problems) > most else ""
    return "; ".join(parts) + more
