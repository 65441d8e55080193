"""Reading a versioned contract file: JSON with a `format_version`, validated by a pydantic model.

Every failure is one SchemaError naming the file: unreadable or not JSON, a format this splitlm
does not read, or fields the model rejects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from splitlm.core.errors import SchemaError
from splitlm.schemas.manifest import describe

Model = TypeVar("Model", bound=BaseModel)


def read_versioned(model: type[Model], path: Path, what: str, version: int) -> Model:
    """`model` validated from the JSON at `path`, whose `format_version` must be `version`.

    `what` names the contract in the error ("router" -> "not a router spec", "unsupported router format").
    """
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SchemaError(f"{path}: not a {what} spec ({describe(err)})") from err
    if not isinstance(raw, dict) or raw.get("format_version") != version:
        got = raw.get("format_version") if isinstance(raw, dict) else None
        raise SchemaError(f"{path}: unsupported {what} format {got} (this splitlm reads {version})")
    try:
        return model.model_validate(raw)
    except ValueError as err:
        raise SchemaError(f"{path}: not a {what} spec ({describe(err)})") from err
