"""The router: centroids + per-cluster biases + the embedder + a prefix rule, saved without pickle.

route(x) = argmin_c ||e(prefix(x)) - c||^2 + b_c, where prefix(x) is the first `prefix_tokens`
tokens of x under the run's tokenizer, decoded back to text, and e is the run's embedder (same
model, mode and precision as the clustering). Windows were assigned with exactly this rule on their
whole text, so routing a window's full text reproduces its shard.

On disk (`RUN/clusters/`): `router.safetensors` (centroids_KD float32, biases_K float32) and
`router.json` (the spec: embedder id, weights sha256, mode, precision, tokenizer, prefix length, K,
corpus fingerprint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from splitlm.errors import SchemaError

TENSORS = "router.safetensors"
SPEC = "router.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RouteResult:
    clusters: np.ndarray  # int32 [n]
    distances: np.ndarray  # float32 [n], squared L2 to the chosen centroid (no bias)


class Router:
    def __init__(self, centroids_KD: np.ndarray, biases_K: np.ndarray, spec: dict[str, Any], embedder=None):
        self.centroids_KD = np.ascontiguousarray(centroids_KD, dtype=np.float32)
        self.biases_K = np.ascontiguousarray(biases_K, dtype=np.float32)
        self.spec = spec
        self._embedder = embedder
        self._tokenizer = None

    @property
    def k(self) -> int:
        return len(self.centroids_KD)

    @classmethod
    def load(cls, run: Path | str, embedder=None) -> "Router":
        from safetensors.numpy import load_file

        folder = Path(run) / "clusters"
        if not (folder / SPEC).exists() or not (folder / TENSORS).exists():
            raise SchemaError(f"{folder}: no router ({SPEC} + {TENSORS}); run `curate cluster` first")
        spec = json.loads((folder / SPEC).read_text())
        if spec.get("format_version") != FORMAT_VERSION:
            raise SchemaError(f"{folder / SPEC}: unsupported router format {spec.get('format_version')}")
        tensors = load_file(str(folder / TENSORS))
        return cls(tensors["centroids_KD"], tensors["biases_K"], spec, embedder)

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"centroids_KD": self.centroids_KD, "biases_K": self.biases_K}, str(folder / TENSORS),
                  metadata={"format_version": str(FORMAT_VERSION)})
        (folder / SPEC).write_text(json.dumps(self.spec, indent=2, sort_keys=True) + "\n")

    @property
    def embedder(self):
        if self._embedder is None:
            from splitlm.curate.embed import EmbedConfig, Embedder

            e = self.spec["embedder"]
            self._embedder = Embedder(EmbedConfig(mode=e["mode"], precision=e["precision"],
                                                  max_pieces=e["max_pieces"]))
            if self._embedder.spec()["weights_sha256"] != e["weights_sha256"]:
                raise SchemaError("the installed MiniLM weights differ from the ones this router was built with")
        return self._embedder

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from splitlm.tokenizer import load_tokenizer

            self._tokenizer = load_tokenizer(self.spec["tokenizer"])
        return self._tokenizer

    def assign_vectors(self, x_ND: np.ndarray) -> RouteResult:
        from splitlm.curate.kmeans import assign

        labels, dist = assign(np.asarray(x_ND, dtype=np.float32), self.centroids_KD, self.biases_K)
        return RouteResult(labels.astype(np.int32), dist.astype(np.float32))

    def route_tokens(self, prefixes: Sequence[Sequence[int]], prefix_tokens: int | None = 32) -> RouteResult:
        """Route token sequences by their first `prefix_tokens` tokens (None: all of them)."""
        cut = [list(p)[:prefix_tokens] if prefix_tokens is not None else list(p) for p in prefixes]
        return self.route_texts(self.tokenizer.decode_batch(cut))

    def route(self, texts: Sequence[str], prefix_tokens: int | None = 32) -> RouteResult:
        """Route raw texts by their first `prefix_tokens` tokens under the run's tokenizer."""
        if prefix_tokens is None:
            return self.route_texts(list(texts))
        return self.route_tokens(self.tokenizer.encode_batch(list(texts)), prefix_tokens)

    def route_texts(self, texts: list[str]) -> RouteResult:
        """Route texts exactly as given (no prefix cut)."""
        return self.assign_vectors(self.embedder.encode(texts))
