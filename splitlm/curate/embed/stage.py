"""The embeddings stage: every window's text -> one MiniLM vector, resumable part by part.

Parts run in this process (`engine="local"`) or as tasks on Ray embedder actors (`engine="ray"`,
see `ray.py`); the engine is part of the config, since thread counts move the last bits.

Windows are decoded to text and embedded in parts of `part_size` rows. Each finished part is saved
atomically to `RUN/.work/embeddings/<key>/part-XXXXX.npy`, so a killed run resumes at the first
missing part; parts are then streamed into `embeddings/vectors.npy` ([windows, 384], row i is
window i) and the scratch folder is removed. The same windows and config give the same bytes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.stage import work_dir
from splitlm.curate.embed.model import EmbedConfig, Embedder
from splitlm.curate.embed.ray import embed_parts
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
    """Windows per resumable part (and per task under Ray)."""
    engine: str = "local"
    """`local` (this process) or `ray` (one embedder actor per worker; parts are Ray tasks)."""
    ray_address: str | None = None
    """Ray cluster to join (`auto`, `ray://host:10001`); None starts a local one on this machine."""
    ray_workers: int = 0
    """Embedder actors; 0 = one per CPU of a local Ray (each actor uses one thread) or per GPU."""

    def __post_init__(self):
        if self.engine not in ("local", "ray"):
            raise ConfigError(f"--engine must be local or ray, got {self.engine!r}")
        if self.part_size < 1:
            raise ConfigError(f"--embed-part-size must be >= 1, got {self.part_size}")
        if self.storage not in ("float32", "float16"):
            raise ConfigError(f"--embed-storage must be float32 or float16, got {self.storage!r}")


def load_vectors(run: Path) -> np.ndarray:
    """Memory-mapped [windows, dim] vectors of a finished run, checked against the stage's manifest."""
    path = run / "embeddings" / "vectors.npy"
    counts = StageManifest.read(path.parent).counts
    try:
        vectors = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise SchemaError(f"{path}: not a complete .npy array ({err}); rerun `curate cluster`") from err
    want = (counts["windows"], counts["dimension"])
    if vectors.shape != want or vectors.dtype != np.dtype(counts["storage"]):
        raise SchemaError(f"{path}: {vectors.dtype}{list(vectors.shape)}, but its manifest says "
                          f"{counts['storage']}{list(want)}; rerun `curate cluster`")
    return vectors


def _save_part(path: Path, vectors: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)


def write_embeddings(run: Path, out: Path, config: EmbeddingsConfig, key: str, advance=lambda n: None,
                     embedder=None) -> dict[str, Any]:
    windows = TokenArray(run / "windows")
    tok = load_tokenizer(StageManifest.read(run / "windows").config["tokenizer"])
    scratch = work_dir(run, "embeddings", key)
    n, size = len(windows), config.part_size
    parts = [(i, min(i + size, n)) for i in range(0, n, size)]
    paths = [scratch / f"part-{index:05d}.npy" for index in range(len(parts))]
    todo = [(index, lo, hi) for index, (lo, hi) in enumerate(parts) if not paths[index].exists()]
    advance(n - sum(hi - lo for _, lo, hi in todo))

    def texts(lo: int, hi: int) -> list[str]:
        return tok.decode_batch(windows.tokens[lo:hi])

    def save(index: int, vectors: np.ndarray) -> None:
        _save_part(paths[index], vectors)
        advance(parts[index][1] - parts[index][0])

    if config.engine == "ray":
        spec = embed_parts(todo, texts, save, config.embed, config.ray_address, config.ray_workers)
    else:
        embedder = embedder or Embedder(config.embed)
        for index, lo, hi in todo:
            save(index, embedder.encode(texts(lo, hi)))
        spec = embedder.spec()
    dim = spec["dimension"]
    out_ND = np.lib.format.open_memmap(out / "vectors.npy", mode="w+", dtype=config.storage, shape=(n, dim))
    for index, (lo, hi) in enumerate(parts):
        part = np.load(paths[index])
        if part.shape != (hi - lo, dim):
            raise SchemaError(f"{paths[index]}: {list(part.shape)} vectors where {[hi - lo, dim]} belong; "
                              "delete it and rerun to embed that part again")
        out_ND[lo:hi] = part
    out_ND.flush()
    del out_ND
    shutil.rmtree(scratch)
    return {"windows": n, "dimension": dim, "parts": len(parts), "parts_resumed": len(parts) - len(todo),
            "embedder": spec, "storage": config.storage, "engine": config.engine}
