"""The routing stage's spec, `RUN/routing/routing.json`, saved beside `head.safetensors` (learned head only).

It says which router routes prefixes (`centroid`: the clusters' biased nearest-centroid rule;
`learned`: a head on top of it, see `splitlm.curate.routing.heads`), how its scores become
probabilities (one temperature per fitted prefix length; `temperature_at` picks the one a route
uses), and which clusters router it was fitted against (`clusters_router_sha256`: the sha256 of
`RUN/clusters/router.safetensors`; a routing folder that does not match is refused).

Head tensors (float32): `weights_FK`, `bias_K`, `mean_F`, `scale_F` (the z-scoring of its features)
and `balance_K` (per-cluster logit biases that even out the routed shares; zeros when not needed).
The head's logits are `z(x) W + b + balance - s(x) / prior_temperature`, where `s` are the centroid
rule's biased scores and `z` the z-scored embedding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from splitlm.core.errors import SchemaError
from splitlm.schemas.versioned import read_versioned

FORMAT_VERSION = 1
ROUTERS = ("centroid", "learned")


class HeadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["residual-linear"] = "residual-linear"
    features: int = Field(ge=1)  # F: the embedding's dimension
    k: int = Field(ge=1)
    l2: float
    prior_temperature: float = Field(gt=0)  # the centroid prior's temperature inside the head
    temperatures: list[float]  # per `RoutingSpec.prefix_lengths`, for the head's own probabilities
    balanced: bool  # whether balance_K was fitted (the routed shares skewed without it)


class RoutingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    router: Literal["centroid", "learned"]
    clusters_router_sha256: str
    prefix_lengths: list[int]  # ascending
    centroid_temperatures: list[float]  # per prefix length
    windows: int  # training windows the fit used
    seed: int
    head: HeadSpec | None = None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> RoutingSpec:
        spec = read_versioned(cls, path, "routing", FORMAT_VERSION)
        n = len(spec.prefix_lengths)
        sizes = [len(spec.centroid_temperatures)] + ([len(spec.head.temperatures)] if spec.head else [])
        if n == 0 or any(s != n for s in sizes) or (spec.router == "learned") != (spec.head is not None):
            raise SchemaError(f"{path}: {n} prefix lengths but temperatures for {sizes}, router {spec.router} "
                              f"with{'' if spec.head else 'out'} a head: the spec is inconsistent")
        return spec


def temperature_at(prefix_lengths: list[int], temperatures: list[float], prefix_tokens: int) -> float:
    """The temperature fitted at the prefix length nearest to `prefix_tokens` in log P (ties: the shorter).

    Nearest, not interpolated: calibration changes little between neighbouring fitted lengths
    (8, 16, 32, 64, 128 by default) and a length past the ends takes the end's temperature.
    """
    logs = np.log(np.asarray(prefix_lengths, dtype=np.float64))
    return float(temperatures[int(np.argmin(np.abs(logs - np.log(max(prefix_tokens, 1)))))])
