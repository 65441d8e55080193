"""The router: centroids + per-cluster biases + the embedder + a prefix rule, saved without pickle.

route(x) = argmin_c ||e(prefix(x)) - c||^2 + b_c, where prefix(x) is the first `prefix_tokens`
tokens of x under the run's tokenizer, decoded back to text, and e is the run's embedder (same
model, mode and precision as the clustering). Windows were assigned with exactly this rule on their
whole text, so routing a window's full text reproduces its shard. This module is the only place
the rule is written down: anything that ranks clusters for a vector asks the router.

On disk (`RUN/clusters/`): `router.safetensors` (centroids_KD float32, biases_K float32) and
`router.json` (`splitlm.schemas.router.RouterSpec`). Loading checks both files' sha256 against the
clusters manifest (when the stage finished) and the tensors' shapes against the spec.

When the run has a routing stage (`RUN/routing/`, `splitlm.curate.routing`), `load` adds it: the
temperatures that turn scores into calibrated probabilities, and with `curate cluster --router
learned` the learned head, which then picks the cluster of every `route*` call (`assign_vectors`
and `top_clusters` stay the centroid rule, the one shards were assigned by). Each result says
which router chose (`router`), the chosen cluster's probability and the runner-up (`top2`); a run
without a routing stage routes with the centroid rule and T = 1 (`calibrated` is False).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from splitlm.core.atomic import atomic_path, atomic_write_text
from splitlm.core.errors import SchemaError
from splitlm.core.stage import MANIFEST
from splitlm.curate.cluster.kmeans import assign
from splitlm.curate.embed.load import embedder_for_spec
from splitlm.curate.routing.decide import router_scores, temperature, top2_probabilities
from splitlm.curate.routing.files import Routing, load_routing
from splitlm.schemas.layout import RunLayout
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.router import FORMAT_VERSION, RouterSpec
from splitlm.tokenizer import load_tokenizer


@dataclass(frozen=True)
class RouteResult:
    clusters: np.ndarray  # int32 [n]
    distances: np.ndarray  # float32 [n], squared L2 to the chosen centroid (no bias)
    probability: np.ndarray | None = None  # float32 [n], the chosen cluster's probability
    top2: np.ndarray | None = None  # int32 [n], the runner-up cluster (-1 when K = 1)
    router: str = "centroid"  # which router chose: centroid | learned


class Router:
    def __init__(self, centroids_KD: np.ndarray, biases_K: np.ndarray, spec: RouterSpec, embedder=None,
                 routing: Routing | None = None):
        self.centroids_KD = np.ascontiguousarray(centroids_KD, dtype=np.float32)
        self.biases_K = np.ascontiguousarray(biases_K, dtype=np.float32)
        self.spec = spec
        self.routing = routing
        self._embedder = embedder
        self._tokenizer = None

    @property
    def kind(self) -> str:
        """Which router picks the cluster of `route*`: centroid or learned."""
        return "learned" if self.routing is not None and self.routing.head is not None else "centroid"

    @property
    def calibrated(self) -> bool:
        """Whether probabilities come from fitted temperatures (the run has a routing stage)."""
        return self.routing is not None

    @property
    def k(self) -> int:
        return len(self.centroids_KD)

    @property
    def prefix_tokens(self) -> int:
        """The prefix length this router was built for; every command routes with it by default."""
        return self.spec.prefix_tokens

    @classmethod
    def load(cls, run: Path | str, embedder=None, routing: bool = True) -> Router:
        """The run's router; `routing=False` leaves out RUN/routing (the centroid rule, uncalibrated)."""
        layout = RunLayout(run)
        spec_path, tensors_path = layout.router_spec, layout.router_tensors
        if not spec_path.exists() or not tensors_path.exists():
            raise SchemaError(f"{spec_path.parent}: no router ({spec_path.name} + {tensors_path.name}); "
                              "run `curate cluster` first")
        if (spec_path.parent / MANIFEST).exists():  # a finished clusters stage vouches for both files
            StageManifest.read(spec_path.parent).check_files(spec_path.parent, [spec_path.name, tensors_path.name])
        spec = RouterSpec.read(spec_path)
        try:
            tensors = load_file(str(tensors_path))
            centroids_KD, biases_K = tensors["centroids_KD"], tensors["biases_K"]
        except (SafetensorError, KeyError, OSError, ValueError) as err:
            raise SchemaError(f"{tensors_path}: not a router's tensors ({err})") from err
        want = {"centroids_KD": (spec.k, spec.embedder.dimension), "biases_K": (spec.k,)}
        for name, array in (("centroids_KD", centroids_KD), ("biases_K", biases_K)):
            if array.shape != want[name] or array.dtype != np.float32:
                raise SchemaError(f"{tensors_path}: {name} is {array.dtype}{list(array.shape)}, {spec_path.name} "
                                  f"says float32{list(want[name])} (k={spec.k}); the two files do not belong together")
        fitted = load_routing(layout.stage("routing"), tensors_path) if routing else None
        return cls(centroids_KD, biases_K, spec, embedder, fitted)

    def save(self, folder: Path) -> None:
        with atomic_path(folder / "router.safetensors") as tmp:
            save_file({"centroids_KD": self.centroids_KD, "biases_K": self.biases_K}, str(tmp),
                      metadata={"format_version": str(FORMAT_VERSION)})
        atomic_write_text(folder / "router.json", self.spec.to_json())

    @property
    def embedder(self):
        """The embedder the run's vectors came from (MiniLM or static), its weights checked against the spec."""
        if self._embedder is None:
            self._embedder = embedder_for_spec(self.spec.embedder)
        return self._embedder

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.spec.tokenizer)
        return self._tokenizer

    def assign_vectors(self, x_ND: np.ndarray) -> RouteResult:
        labels, dist = assign(np.asarray(x_ND, dtype=np.float32), self.centroids_KD, self.biases_K)
        return RouteResult(labels.astype(np.int32), dist.astype(np.float32))

    def top_clusters(self, x_ND: np.ndarray, n: int) -> np.ndarray:
        """[N, n] the n best clusters per row under the rule ||x - c||^2 + b_c (||x||^2 is common to all).

        Column 0 can differ from `assign_vectors` on float32 near-ties, which `assign` settles in float64.
        """
        c_KD = self.centroids_KD
        score_NK = (c_KD.astype(np.float64) ** 2).sum(1) - 2.0 * (np.asarray(x_ND) @ c_KD.T) + self.biases_K
        return np.argsort(score_NK, axis=1, kind="stable")[:, :n]

    def route_vectors(self, x_ND: np.ndarray, prefix_tokens: int | None = None) -> RouteResult:
        """Route embeddings of prefixes `prefix_tokens` long (None: the router's own; it picks the temperature)."""
        x_ND = np.asarray(x_ND, dtype=np.float32)
        n = self.prefix_tokens if prefix_tokens is None else prefix_tokens
        scores_NK, kind = router_scores(x_ND, self.centroids_KD, self.biases_K, self.routing)
        if kind == "centroid":
            chosen = self.assign_vectors(x_ND)  # float64 near-ties settled exactly as shards were assigned
            clusters, distances = chosen.clusters, chosen.distances
        else:
            clusters = scores_NK.argmin(1).astype(np.int32)
            c_KD = self.centroids_KD[clusters]
            distances = ((x_ND.astype(np.float64) - c_KD) ** 2).sum(1).astype(np.float32)
        probability, top2 = top2_probabilities(scores_NK, clusters, temperature(self.routing, n))
        return RouteResult(clusters, distances, probability, top2, kind)

    def route_tokens(self, prefixes: Sequence[Sequence[int]], prefix_tokens: int | None = None) -> RouteResult:
        """Route token sequences by their first `prefix_tokens` tokens (None: the router's own prefix length)."""
        n = self.prefix_tokens if prefix_tokens is None else prefix_tokens
        return self.route_texts(self.tokenizer.decode_batch([list(p)[:n] for p in prefixes]), n)

    def route(self, texts: Sequence[str], prefix_tokens: int | None = None) -> RouteResult:
        """Route raw texts by their first `prefix_tokens` tokens (None: the router's own prefix length)."""
        return self.route_tokens(self.tokenizer.encode_batch(list(texts)), prefix_tokens)

    def route_texts(self, texts: list[str], prefix_tokens: int | None = None) -> RouteResult:
        """Route texts exactly as given (no prefix cut); `prefix_tokens` only picks the temperature."""
        return self.route_vectors(self.embedder.encode(texts), prefix_tokens)
