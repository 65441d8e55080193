"""The router's spec, `RUN/clusters/router.json`, saved beside `router.safetensors`.

The tensors are `centroids_KD` and `biases_K` (float32). The spec says how to turn a text into
the vector they score: which embedder (model, weights sha256, mode, precision), which tokenizer
cuts the prefix, and how long the prefix is (`prefix_tokens`, which every command that routes
uses unless told otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from splitlm.schemas.versioned import read_versioned

FORMAT_VERSION = 1
RULE = "argmin_c ||x - c||^2 + b_c, x L2-normalised"


class EmbedderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_id: str
    weights_sha256: str
    mode: str  # truncate | mean
    precision: str  # fp32 | bf16 | fp16
    max_pieces: int
    dimension: int
    pooling: str
    normalized: bool


class RouterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    k: int = Field(ge=1)
    rule: str = RULE
    embedder: EmbedderSpec
    tokenizer: str
    tokenizer_sha256: str
    prefix_tokens: int = Field(ge=1)
    normalization: str = "l2"
    corpus_fingerprint: str

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> RouterSpec:
        return read_versioned(cls, path, "router", FORMAT_VERSION)
