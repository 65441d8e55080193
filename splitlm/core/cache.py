"""Where offline assets live: $SPLITLM_CACHE, else ~/.cache/splitlm (see `splitlm.assets`)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(cache: Path | str | None = None) -> Path:
    if cache is not None:
        return Path(cache)
    return Path(os.environ.get("SPLITLM_CACHE", Path.home() / ".cache" / "splitlm"))
