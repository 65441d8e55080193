"""`RUN/routing/`: the routing spec (`routing.json`), for a learned router `head.safetensors`, and
`prefixes.safetensors`: the embeddings of the training prefixes the stage fitted on.

The stage's cost is embedding those prefixes; `curate inspect` measures routing on prefixes of the
same windows at overlapping lengths, so it reads them back (`stored_prefix_texts`) instead of
embedding them again.

Loading checks the files against the stage's manifest (the folder is complete exactly when it has
one) and the spec against the clusters router it was fitted on, so a routing folder left over from
an earlier clustering is refused instead of routing with the wrong clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from splitlm.core.atomic import atomic_path, atomic_write_text
from splitlm.core.errors import SchemaError
from splitlm.core.hashing import sha256_file
from splitlm.core.stage import MANIFEST
from splitlm.curate.routing.heads import LinearHead
from splitlm.curate.rows import take_rows
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.routing import FORMAT_VERSION, RoutingSpec

SPEC = "routing.json"
HEAD = "head.safetensors"
PREFIXES = "prefixes.safetensors"


@dataclass(frozen=True)
class Routing:
    spec: RoutingSpec
    head: LinearHead | None = None
    balance_K: np.ndarray | None = None  # float32, added to the head's logits


def save_routing(folder: Path, routing: Routing) -> None:
    if routing.head is not None:
        h = routing.head
        tensors = {"weights_FK": h.weights_FK, "bias_K": h.bias_K, "mean_F": h.mean_F, "scale_F": h.scale_F,
                   "balance_K": np.asarray(routing.balance_K, dtype=np.float32)}
        with atomic_path(folder / HEAD) as tmp:
            save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(tmp),
                      metadata={"format_version": str(FORMAT_VERSION)})
    atomic_write_text(folder / SPEC, routing.spec.to_json())


def load_routing(folder: Path, clusters_router: Path) -> Routing | None:
    """The routing of a finished stage in `folder`, None when there is none."""
    if not (folder / MANIFEST).exists():
        return None
    manifest = StageManifest.read(folder)
    names = [SPEC] + ([HEAD] if HEAD in manifest.parts else [])
    manifest.check_files(folder, names)
    spec = RoutingSpec.read(folder / SPEC)
    if spec.clusters_router_sha256 != sha256_file(clusters_router):
        raise SchemaError(f"{folder / SPEC}: fitted on another {clusters_router.name} than {clusters_router}; "
                          "rerun `curate cluster` to refit the routing stage")
    if spec.head is None:
        return Routing(spec)
    try:
        t = load_file(str(folder / HEAD))
        head = LinearHead(t["weights_FK"], t["bias_K"], t["mean_F"], t["scale_F"])
        balance_K = t["balance_K"]
    except (SafetensorError, KeyError, OSError, ValueError) as err:
        raise SchemaError(f"{folder / HEAD}: not a routing head ({err})") from err
    f, k = spec.head.features, spec.head.k
    want = {"weights_FK": (f, k), "bias_K": (k,), "mean_F": (f,), "scale_F": (f,), "balance_K": (k,)}
    got = {"weights_FK": head.weights_FK, "bias_K": head.bias_K, "mean_F": head.mean_F, "scale_F": head.scale_F,
           "balance_K": balance_K}
    for name, array in got.items():
        if array.shape != want[name] or array.dtype != np.float32:
            raise SchemaError(f"{folder / HEAD}: {name} is {array.dtype}{list(array.shape)}, {SPEC} says "
                              f"float32{list(want[name])}; the two files do not belong together")
    return Routing(spec, head, balance_K)


def save_prefix_vectors(folder: Path, window_ids_N: np.ndarray, vectors: dict[int, np.ndarray]) -> None:
    """`prefixes.safetensors`: window ids [N], prefix lengths [L] and their embeddings [L, N, D] (float32)."""
    lengths = sorted(vectors)
    tensors = {"window_ids": np.asarray(window_ids_N, dtype=np.int64),
               "prefix_lengths": np.asarray(lengths, dtype=np.int64),
               "vectors_LND": np.stack([np.asarray(vectors[p], dtype=np.float32) for p in lengths])}
    with atomic_path(folder / PREFIXES) as tmp:
        save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})


def stored_prefix_texts(folder: Path, tokenizer, tokens_NW) -> dict[str, np.ndarray]:
    """{prefix text: embedding} of the stage's training prefixes (decoded as the router cuts them), or {}
    for a stage without the file. The file is checked against the stage's manifest first."""
    if not (folder / MANIFEST).exists() or PREFIXES not in StageManifest.read(folder).parts:
        return {}
    StageManifest.read(folder).check_files(folder, [PREFIXES])
    t = load_file(str(folder / PREFIXES))
    ids_N, lengths, vectors_LND = t["window_ids"], t["prefix_lengths"], t["vectors_LND"]
    if vectors_LND.shape[:2] != (len(lengths), len(ids_N)):
        raise SchemaError(f"{folder / PREFIXES}: vectors {list(vectors_LND.shape)} for {len(lengths)} lengths "
                          f"x {len(ids_N)} windows")
    rows_NW = take_rows(tokens_NW, ids_N)
    out: dict[str, np.ndarray] = {}
    for p, vectors_ND in zip(lengths.tolist(), vectors_LND):
        out.update(zip(tokenizer.decode_batch(rows_NW[:, :p]), vectors_ND))
    return out
