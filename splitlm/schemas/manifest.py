"""The manifest every stage writes last, via atomic rename, to mark its folder complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from splitlm.errors import SchemaError


class StageManifest(BaseModel):
    stage: str
    config: dict[str, Any]  # the resolved config of the stage
    config_hash: str  # sha256 of the canonical JSON of `config`
    input_fingerprint: str  # sha256 over the inputs (files or upstream manifests)
    seed: int = 0
    counts: dict[str, Any] = Field(default_factory=dict)  # in/out/dropped with reasons
    parts: dict[str, str] = Field(default_factory=dict)  # relative path -> sha256
    versions: dict[str, str] = Field(default_factory=dict)  # library versions
    wall_seconds: float = 0.0

    @classmethod
    def read(cls, path: Path) -> "StageManifest":
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValueError) as err:
            raise SchemaError(f"{path}: not a valid stage manifest ({err})") from err

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n"

    @property
    def output_fingerprint(self) -> str:
        """What downstream stages fingerprint: the config plus every part's hash, not timings."""
        from splitlm.curate.stage import sha256_json

        return sha256_json({"stage": self.stage, "config": self.config_hash, "parts": self.parts})
