"""Shared test setup: offline hub, one thread per library, and the shared corpora folder.

Tests that read ../shared (20 Newsgroups, reference tables) are marked `shared`, by hand or, for
every test that uses the `news_path` fixture, here. `make test` runs them when ../shared/corpora
is there and otherwise leaves them out with one line saying so.

`make test` runs the suite on two pytest-xdist workers (`--dist loadgroup`). Each test file is one
group, so a module's fixtures are built once, on one worker; the files marked `ray` form a single
group, so only one local Ray cluster runs at a time.
"""

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


SHARED_FIXTURES = {"news_path"}


def pytest_collection_modifyitems(config, items):
    """Tests that read ../shared carry the `shared` marker, so `make test` can leave them out without it;
    each test joins its file's xdist group, or the `ray` group."""
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.shared)
        group = "ray" if item.get_closest_marker("ray") else item.path.relative_to(ROOT).as_posix()
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def news_path() -> Path:
    """20 Newsgroups from ../shared/corpora; a clear failure (not a skip) when it is absent."""
    assert NEWS.exists(), f"{NEWS} is missing: tests need ../shared/corpora beside the checkout"
    return NEWS
