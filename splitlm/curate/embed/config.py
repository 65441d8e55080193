"""How windows become vectors: which embedder, how it reads a long text, and on what hardware.

Two embedders share this config (`--embedder`):
- `minilm`: all-MiniLM-L6-v2, a 6-layer transformer (`model.py`), 384-d;
- `static`: a model2vec static embedding distilled offline from the same MiniLM weights by
  `splitlm assets` (`static.py`): one vector per word piece, averaged; thousands of windows/s on a CPU.

`mode` says how a text longer than `max_pieces` word pieces is read: `truncate` reads its head,
`mean` reads all of it. None picks each embedder's default: `truncate` for MiniLM (as
`SentenceTransformer.encode`), `mean` (the whole window) for `static`, where reading all of it costs
little. Every embedder returns L2-normalised float32 rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from splitlm.core.errors import ConfigError

EmbedderName = Literal["minilm", "static"]
EmbedMode = Literal["truncate", "mean"]
Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
DEFAULT_MODE = {"minilm": "truncate", "static": "mean"}


@dataclass(frozen=True)
class EmbedConfig:
    name: EmbedderName = "minilm"
    """Which embedder: `minilm` (the transformer) or `static` (distilled from it)."""
    mode: EmbedMode | None = None
    """How a text longer than `max_pieces` is read: its head, or all of it. None: the embedder's default."""
    precision: Precision = "auto"
    """MiniLM's arithmetic. auto = bf16 where the device has native bf16, else the fastest CPU choice
    that keeps MiniLM's outputs (see `model.resolve_precision`). fp16 is GPU-only; int8 is ONNX
    Runtime's dynamic int8 on CPU. The static embedder computes in fp32 whatever this says."""
    batch_size: int = 32
    """Model calls (texts, or chunks in `mean` mode) per forward pass."""
    max_pieces: int = 256
    """Word pieces per model call including [CLS] and [SEP]; 256 is MiniLM's trained length."""
    device: str | None = None
    """torch device; None = cuda when visible, else cpu."""

    def __post_init__(self) -> None:
        if self.name not in DEFAULT_MODE:
            raise ConfigError(f"--embedder {self.name!r}: choose minilm or static")
        if self.mode is not None and self.mode not in ("truncate", "mean"):
            raise ConfigError(f"--embed-mode {self.mode!r}: choose truncate or mean")
        if self.precision not in ("auto", "fp32", "bf16", "fp16", "int8"):
            raise ConfigError(f"--precision {self.precision!r}: choose auto, fp32, bf16, fp16 or int8")
        if self.batch_size < 1:
            raise ConfigError(f"--embed-batch-size {self.batch_size}: must be >= 1")
        if not 8 <= self.max_pieces <= 512:
            raise ConfigError(f"--max-pieces {self.max_pieces}: must be in 8..512 (MiniLM has 512 positions)")

    @property
    def read_mode(self) -> EmbedMode:
        """The mode in effect: the one asked for, else the embedder's default."""
        return self.mode or DEFAULT_MODE[self.name]
