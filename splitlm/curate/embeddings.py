"""The embeddings stage: every window's text -> one MiniLM vector, resumable part by part.

Windows are decoded to text and embedded in parts of `part_size` rows. Each finished part is saved
atomically to `RUN/.work/embeddings/<key>/part-XXXXX.npy`, so a killed run resumes at the first
missing part; parts are then streamed into `embeddings/vectors.npy` ([windows, 384], row i is
window i) and the scratch folder is removed. The same windows and config give the same bytes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from splitlm.curate.embed import EmbedConfig
from splitlm.errors import ConfigError


@dataclass(frozen=True)
class EmbeddingsConfig:
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    storage: str = "float32"
    """`float32` or `float16` for vectors.npy (clustering always computes in float32)."""
    part_size: int = 512
    """Windows per resumable part."""

    def __post_init__(self):
        if self.part_size < 1:
            raise ConfigError(f"--embed-part-size must be >= 1, got {self.part_size}")
        if self.storage not in ("float32", "float16"):
            raise ConfigError(f"--embed-storage must be float32 or float16, got {self.storage!r}")


def load_vectors(run: Path) -> np.ndarray:
    """Memory-mapped [windows, dim] vectors of a finished run."""
    return np.load(run / "embeddings" / "vectors.npy", mmap_mode="r")


def write_embeddings(run: Path, out: Path, config: EmbeddingsConfig, key: str, advance=lambda n: None,
                     embedder=None) -> dict[str, Any]:
    from splitlm.curate.embed import Embedder
    from splitlm.curate.stage import work_dir
    from splitlm.schemas.tokens import TokenArray
    from splitlm.tokenizer import load_tokenizer

    import json

    windows = TokenArray(run / "windows")
    tok = load_tokenizer(json.loads((run / "windows" / "manifest.json").read_text())["config"]["tokenizer"])
    embedder = embedder or Embedder(config.embed)
    scratch = work_dir(run, "embeddings", key)
    n, size = len(windows), config.part_size
    parts = [(i, min(i + size, n)) for i in range(0, n, size)]
    resumed = 0
    for index, (lo, hi) in enumerate(parts):
        path = scratch / f"part-{index:05d}.npy"
        if path.exists():
            resumed += 1
        else:
            vectors = embedder.encode(tok.decode_batch(windows.tokens[lo:hi]))
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            with open(tmp, "wb") as fh:
                np.save(fh, vectors)
            os.replace(tmp, path)
        advance(hi - lo)
    dim = embedder.dimension
    out_ND = np.lib.format.open_memmap(out / "vectors.npy", mode="w+", dtype=config.storage, shape=(n, dim))
    for index, (lo, hi) in enumerate(parts):
        out_ND[lo:hi] = np.load(scratch / f"part-{index:05d}.npy")
    out_ND.flush()
    del out_ND
    shutil.rmtree(scratch)
    return {"windows": n, "dimension": dim, "parts": len(parts), "parts_resumed": resumed,
            "embedder": embedder.spec(), "storage": config.storage}
