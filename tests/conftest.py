"""Shared test setup: offline hub, one thread per library, and the shared corpora folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"
NEWS = SHARED_CORPORA / "20news_bydate.jsonl.gz"


@pytest.fixture(scope="session")
def news_path() -> Path:
    """20 Newsgroups from ../shared/corpora; a clear failure (not a skip) when it is absent."""
    assert NEWS.exists(), f"{NEWS} is missing: tests need ../shared/corpora beside the checkout"
    return NEWS
