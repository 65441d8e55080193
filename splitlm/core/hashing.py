"""Content hashes: canonical JSON and streamed files, the fingerprints every stage compares."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any


def canonical(config: Any) -> dict[str, Any]:
    """A dataclass or mapping as plain JSON types: tuples become lists, paths strings."""
    data = asdict(config) if is_dataclass(config) else dict(config)
    return json.loads(json.dumps(data, default=str))


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
