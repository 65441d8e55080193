"""The embeddings stage: every window's text -> one vector (MiniLM or static), resumable part by part.

Parts run in this process (the local engine) or on a Ray Data actor pool (`--engine ray`, see
`ray.py`); both save the same parts, and the vectors are the same bytes where MiniLM's kernels do
not depend on the thread count (checked on this AVX2 CPU: 1 and 2 threads agree bit for bit; the
static embedder's sums run on one thread). The embedder is `load.load_embedder(config.embed)`.

Windows are decoded to text and embedded in parts of `part_size` rows. Each finished part is saved
atomically to `RUN/.work/embeddings/<key>/part-XXXXX.npy`, so a killed run resumes at the first
missing part; parts are then streamed into the stage's vector files and the scratch folder is
removed. The vectors ([windows, dim]: 384-d MiniLM, 256-d static; row i is window i) are
`embeddings/vectors.npy` when they fit in `part_mb` megabytes, else `vectors-00000.npy`,
`vectors-00001.npy`, ... of `part_mb` each, in row order (listed with their rows under
`counts["vector_parts"]`; the manifest holds their sha256). `load_vectors` reads either as one
array. The same windows and config give the same bytes.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.atomic import atomic_write_text
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.parted import PartedRows
from splitlm.core.stage import work_dir
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.load import load_embedder
from splitlm.curate.embed.ray import embed_parts, save_part
from splitlm.curate.engine.run import Engine
from splitlm.schemas.manifest import StageManifest
from splitlm.schemas.tokens import TokenArray
from splitlm.tokenizer import load_tokenizer

ALGORITHM = 1  # bump when the same config and input would give other output (see `splitlm.curate.stage`)


@dataclass(frozen=True)
class EmbeddingsConfig:
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    storage: str = "float32"
    """`float32` or `float16` for vectors.npy (clustering always computes in float32)."""
    part_size: int = 512
    """Windows per resumable part (and per actor call under Ray)."""
    part_mb: float = 256.0
    """Megabytes per vectors file (`--part-mb`); vectors that fit in one are a plain vectors.npy."""

    def __post_init__(self):
        if self.part_mb <= 0:
            raise ConfigError(f"--part-mb must be positive, got {self.part_mb}")
        if self.part_size < 1:
            raise ConfigError(f"--embed-part-size must be >= 1, got {self.part_size}")
        if self.storage not in ("float32", "float16"):
            raise ConfigError(f"--embed-storage must be float32 or float16, got {self.storage!r}")


def load_vectors(run: Path) -> np.ndarray | PartedRows:
    """Memory-mapped [windows, dim] vectors of a finished run, checked against the stage's manifest.

    One `vectors.npy` is returned as its memmap; parts as one `PartedRows` view over their memmaps.
    """
    folder = run / "embeddings"
    counts = StageManifest.read(folder).counts
    names = [p["file"] for p in counts.get("vector_parts", [])] or ["vectors.npy"]
    arrays = []
    for name in names:
        try:
            arrays.append(np.load(folder / name, mmap_mode="r"))
        except (OSError, ValueError) as err:
            raise SchemaError(f"{folder / name}: not a complete .npy array ({err}); rerun `curate cluster`") from err
    vectors = arrays[0] if len(arrays) == 1 else PartedRows(arrays)
    want = (counts["windows"], counts["dimension"])
    if vectors.shape != want or any(a.dtype != np.dtype(counts["storage"]) for a in arrays):
        raise SchemaError(f"{folder / names[0]}: {vectors.dtype}{list(vectors.shape)}, but its manifest says "
                          f"{counts['storage']}{list(want)}; rerun `curate cluster`")
    return vectors


def write_embeddings(run: Path, out: Path, config: EmbeddingsConfig, key: str, advance=lambda n: None,
                     embedder=None, engine: Engine | None = None) -> dict[str, Any]:
    windows = TokenArray(run / "windows")
    tokenizer = StageManifest.read(run / "windows").config["tokenizer"]
    scratch = work_dir(run, "embeddings", key)
    n, size = len(windows), config.part_size
    parts = [(i, min(i + size, n)) for i in range(0, n, size)]
    paths = [scratch / f"part-{index:05d}.npy" for index in range(len(parts))]
    todo = [(index, lo, hi) for index, (lo, hi) in enumerate(parts) if not paths[index].exists()]
    advance(n - sum(hi - lo for _, lo, hi in todo))
    pids: list[int] = []
    if engine is not None and engine.is_ray:
        spec, pids = embed_parts(todo, paths, run / "windows", tokenizer, config.embed, engine.config.workers,
                                 lambda index: advance(parts[index][1] - parts[index][0]))
    else:
        tok = load_tokenizer(tokenizer)
        embedder = embedder or load_embedder(config.embed)
        for index, lo, hi in todo:
            save_part(paths[index], embedder.encode(tok.decode_batch(windows.tokens[lo:hi])))
            advance(hi - lo)
        spec = embedder.spec()
    spec = _remember_spec(scratch, spec, config)
    files = _write_vectors(out, paths, parts, n, spec["dimension"], config)
    shutil.rmtree(scratch)
    return {"windows": n, "dimension": spec["dimension"], "parts": len(parts), "parts_resumed": len(parts) - len(todo),
            "embedder": spec, "storage": config.storage, "vector_parts": files, "workers": sorted(set(pids))}


def _remember_spec(scratch: Path, spec: dict | None, config: EmbeddingsConfig) -> dict:
    """The embedder spec, kept in the scratch folder so a fully resumed run need not load a model."""
    path = scratch / "spec.json"
    if spec is not None:
        atomic_write_text(path, json.dumps(spec, sort_keys=True))
        return spec
    if path.exists():
        return json.loads(path.read_text())
    return load_embedder(config.embed).spec()


def _write_vectors(out: Path, paths: list[Path], parts: list[tuple[int, int]], n: int, dim: int,
                   config: EmbeddingsConfig) -> list[dict]:
    """The scratch parts streamed into `part_mb`-sized vector files; [] when one vectors.npy holds all."""
    per_file = max(1, int(config.part_mb * 2**20) // (dim * np.dtype(config.storage).itemsize))
    spans = [(lo, min(lo + per_file, n)) for lo in range(0, n, per_file)] or [(0, 0)]
    names = ["vectors.npy"] if len(spans) == 1 else [f"vectors-{i:05d}.npy" for i in range(len(spans))]
    index = 0
    for name, (lo, hi) in zip(names, spans):
        out_ND = np.lib.format.open_memmap(out / name, mode="w+", dtype=config.storage, shape=(hi - lo, dim))
        while index < len(parts) and parts[index][0] < hi:
            plo, phi = parts[index]
            part = np.load(paths[index], mmap_mode="r")
            if part.shape != (phi - plo, dim):
                raise SchemaError(f"{paths[index]}: {list(part.shape)} vectors where {[phi - plo, dim]} belong; "
                                  "delete it and rerun to embed that part again")
            a, b = max(plo, lo), min(phi, hi)
            out_ND[a - lo : b - lo] = part[a - plo : b - plo]
            if phi > hi:
                break
            index += 1
        out_ND.flush()
        del out_ND
    return [] if len(names) == 1 else [{"file": f, "rows": hi - lo} for f, (lo, hi) in zip(names, spans)]
