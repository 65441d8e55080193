"""The run summary, `RUN/manifest.json`: what `curate` hands to `train`.

Written by the curation pipeline after every command, read by training (sequence length,
tokenizer, vocabulary, K) and by anyone auditing a run. Its document counts add up:
documents_in = quarantined (all reasons) + duplicate + dropped + windowed, and its token counts:
tokens + tokens_dropped = tokens_in. Fields after `seed` exist once `curate cluster` has run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.schemas.manifest import describe


class RunSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents_in: int
    documents_quarantined: dict[str, int]  # reason -> rows
    documents_duplicate: int
    documents_dropped: int  # inside a leftover that the packing policy dropped
    documents_windowed: int
    windows: int
    windows_val: int
    tokens: int  # in windows
    tokens_in: int
    tokens_dropped: int
    seq_len: int  # predicted tokens per window; windows hold seq_len + 1 ids
    tokenizer: str
    tokenizer_sha256: str
    vocab_size: int
    eos_id: int
    policy: str
    seed: int
    files_skipped: dict[str, int] | None = None  # what the input walk passed over (other formats, links), if any
    k: int | None = None
    embed_mode: str | None = None
    clusters: dict[str, Any] | None = None  # the clusters stage's counts (balance, plain faiss)
    shards: dict[str, Any] | None = None  # the shards stage's counts (windows per cluster and split)

    @property
    def documents_accounted(self) -> int:
        return (sum(self.documents_quarantined.values()) + self.documents_duplicate + self.documents_dropped
                + self.documents_windowed)

    def check(self) -> None:
        """The accounting identities; a failure is a bug in splitlm, not a user error."""
        if self.documents_accounted != self.documents_in:
            raise RuntimeError(f"document accounting is off: {self}")
        if self.tokens + self.tokens_dropped != self.tokens_in:
            raise RuntimeError(f"token accounting is off: {self}")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), indent=2, sort_keys=True) + "\n"

    def write(self, run: Path) -> None:
        self.check()
        atomic_write_text(Path(run) / "manifest.json", self.to_json())

    @classmethod
    def read(cls, run: Path, clustered: bool = False) -> RunSummary:
        """The summary of RUN; with `clustered`, a run that has not been through `curate cluster` is an error."""
        path = Path(run) / "manifest.json"
        if not path.exists():
            raise ConfigError(f"{path}: missing; RUN must be a folder written by `curate cluster`")
        try:
            summary = cls.model_validate_json(path.read_text())
        except ValueError as err:
            raise SchemaError(f"{path}: not a run summary ({describe(err)})") from err
        if clustered and summary.k is None:
            raise ConfigError(f"{path}: the run has windows but no clusters; run `curate cluster` on it first")
        return summary
