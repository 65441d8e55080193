"""Checks of command-line values: a ConfigError naming the flag, raised before any work or any write.

Every numeric option of `train split/eval/fit/plan` goes through `number` (in the config
dataclass that holds it, or at the top of the function that takes it), so NaN, infinity, zero and
negative values are refused with the flag's name whatever the code that would have tripped on
them later. `out_folder` refuses an output path that is, or lies under, an existing file.
"""

from __future__ import annotations

import math
from pathlib import Path

from splitlm.core.errors import ConfigError


def number(flag: str, value: float, least: float | None = None, above: float | None = None,
           finite: bool = True, meaning: str = "") -> float:
    """`value` if it is a number, finite unless `finite` is False, >= `least` and > `above`."""
    rules = ([] if least is None else [f">= {least:g}"]) + ([] if above is None else [f"> {above:g}"])
    rule = " and ".join(rules)
    kind = "whole number" if isinstance(value, int) else "finite number" if finite else "number"
    need = f"need a {kind}{' ' + rule if rule else ''}{f' ({meaning})' if meaning else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{flag} {value!r}: {need}")
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ConfigError(f"{flag} {value}: {need}")
    if (least is not None and value < least) or (above is not None and value <= above):
        raise ConfigError(f"{flag} {value:g}: {need}")
    return value


def out_folder(path: Path, flag: str = "--out") -> Path:
    """`path` if it is a folder or can become one: no part of it is an existing file."""
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is a file" if part == path else f"lies under the file {part}"
                raise ConfigError(f"{flag} {path}: {where}; give a folder path")
            break
    return path
