"""Embed texts with all-MiniLM-L6-v2: 384-d, L2-normalised float32, one row per text.

MiniLM reads at most `max_pieces` word pieces per call (256, counting [CLS] and [SEP]); a 2,048-token
GPT-2 window is ~2,300 pieces, so a long text is fed in one of two ways:
- `truncate` (default): the first `max_pieces - 2` pieces, as `SentenceTransformer.encode` does. Only a
  head of the text (cut at whitespace) is tokenised, since the rest would be thrown away.
- `mean`: the whole text is tokenised with the model's own tokenizer and cut into consecutive chunks
  of `max_pieces - 2` pieces; each chunk gets its own [CLS] ... [SEP] and is embedded and normalised;
  the text's vector is the mean of its chunk vectors weighted by each chunk's piece count (a 3-piece
  tail should not count as much as a full chunk), renormalised. Cost grows with length: ~9x truncate.

The forward pass is the model's BERT backbone, then mean pooling over real tokens and L2
normalisation in float32 (what the package's Pooling + Normalize modules do). Units are sorted by
piece count so each batch pads little; results return in input order. Threads: whatever
`torch.get_num_threads()` says.

Backends, by `precision`: `fp32`, `bf16`, `fp16` run the torch backbone in that dtype; `int8` runs
the int8 ONNX Runtime graph `splitlm assets` builds from the same weights (`onnx.py`), CPU only, with
the same tokenisation, batching, pooling and normalisation. `auto` (`resolve_precision`) picks bf16
where the hardware has native bf16 (AMX/AVX512-BF16 CPUs, most GPUs: cosine >= 0.9999 to fp32 and
2-5x faster there), else fp32. It never picks int8: on a 2-core AVX2 EPYC (no VNNI, no bf16) the
int8 graph (attention fused and int8, feed-forward outputs fp32) runs at about 1.5x plain encode
(fp32: 1.04x) with min cosine 0.989-0.991 to fp32 and 96.8-99.1% of 20 Newsgroups windows keeping
fp32's shard (samples of 300-600 windows); quantising every layer reaches 1.6-1.9x at min cosine
0.98. Both miss the 2x, 0.99 and 98% bars; int8 stays an explicit choice.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from splitlm.core.cache import cache_dir
from splitlm.core.errors import ConfigError
from splitlm.core.hashing import sha256_file
from splitlm.curate.embed.config import EmbedConfig, Precision
from splitlm.curate.embed.onnx import OnnxBackbone, minilm_dir, provision_onnx

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# BERT's pre-tokenizer splits on whitespace, so a head cut at whitespace tokenises to a prefix of the
# full text's pieces; 12 chars per piece leaves a wide margin (English averages ~4).
HEAD_CHARS_PER_PIECE = 12


def model_path() -> Path:
    return minilm_dir()


@lru_cache(maxsize=2)
def _file_sha256(path: Path) -> str:
    return sha256_file(path)


def resolve_device(device: str | None) -> str:
    import torch

    if device is not None:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX tiles, as torch sees them; without either the CPU emulates bf16 slowly."""
    import torch

    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def resolve_precision(precision: Precision, device: str, native_bf16: bool | None = None) -> str:
    """The arithmetic MiniLM runs in on `device`: `precision` itself, or what `auto` picks there.

    `native_bf16` (CPU only) overrides the hardware probe, for tests.
    """
    if precision == "fp16" and not device.startswith("cuda"):
        raise ConfigError("--precision fp16 needs a GPU; use bf16 or fp32 on CPU")
    if precision == "int8" and device != "cpu":
        raise ConfigError(f"--precision int8 runs on CPU only (ONNX Runtime), but the device is {device!r}; "
                          "use auto, bf16 or fp16 on a GPU")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if native_bf16 is None:
        native_bf16 = cpu_has_native_bf16()
    # Without native bf16 the CPU emulates it and runs slower than fp32; int8 missed the agreement bar.
    return "bf16" if native_bf16 else "fp32"


class Embedder:
    """Loads MiniLM once; `encode` maps texts to unit vectors, deterministic for the same inputs."""

    def __init__(self, config: EmbedConfig | None = None, cache: Path | str | None = None) -> None:
        """`cache`: where `splitlm assets` put the int8 graph (default: the splitlm cache dir)."""
        import torch

        self.config = config or EmbedConfig()
        self.device = resolve_device(self.config.device)
        self.precision = resolve_precision(self.config.precision, self.device)
        self._path = model_path()
        self._onnx: OnnxBackbone | None = None
        if self.precision == "int8":
            self._onnx = OnnxBackbone(provision_onnx(cache_dir(cache), check_only=True))
            tokenizer, self.dimension = _load_tokenizer(self._path)
        else:
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
            self._backbone, tokenizer = _load(self._path, self.device, dtype)
            self.dimension = int(self._backbone.config.hidden_size)
        self._tokenizer = _plain_tokenizer(tokenizer)
        self._cls, self._sep, self._pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id

    def spec(self) -> dict:
        return {
            "model_id": MODEL_ID,
            "weights_sha256": _file_sha256(self._path / "model.safetensors"),
            "mode": self.config.read_mode,
            "precision": self.precision,
            "max_pieces": self.config.max_pieces,
            "dimension": self.dimension,
            "pooling": "mean",
            "normalized": True,
        }

    def encode(self, texts: list[str]) -> np.ndarray:
        """[n, 384] float32, unit rows, in the order of `texts`."""
        out_ND = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out_ND
        owner_U, pieces_U = self._units(texts)
        unit_UD = self._embed_units(pieces_U)
        # Chunk vectors add into their text's row weighted by piece count; truncate has 1 unit per text.
        weight_U = np.array([max(len(p), 1) for p in pieces_U], dtype=np.float32)
        np.add.at(out_ND, owner_U, unit_UD * weight_U[:, None])
        return out_ND / np.linalg.norm(out_ND, axis=1, keepdims=True)

    def _units(self, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
        """Model calls as (owning text index, content piece ids without [CLS]/[SEP])."""
        room = self.config.max_pieces - 2
        if self.config.read_mode == "truncate":
            return np.arange(len(texts)), head_pieces(self._tokenizer, texts, room)
        owner, pieces = [], []
        for i, enc in enumerate(self._tokenizer.encode_batch(texts, add_special_tokens=False)):
            chunks = [enc.ids[s : s + room] for s in range(0, len(enc.ids), room)] or [[]]
            owner += [i] * len(chunks)
            pieces += chunks
        return np.array(owner), pieces

    def _embed_units(self, pieces_U: list[list[int]]) -> np.ndarray:
        import torch

        order = sorted(range(len(pieces_U)), key=lambda u: -len(pieces_U[u]))  # stable: ties keep order
        out_UD = np.empty((len(pieces_U), self.dimension), dtype=np.float32)
        bs = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), bs):
                batch = order[start : start + bs]
                out_UD[batch] = self._forward([pieces_U[u] for u in batch])
        return out_UD

    def _forward(self, pieces_B: list[list[int]]) -> np.ndarray:
        import torch

        seq_len = max(len(p) for p in pieces_B) + 2
        ids_BL = np.full((len(pieces_B), seq_len), self._pad, dtype=np.int64)
        mask_BL = np.zeros((len(pieces_B), seq_len), dtype=np.int64)
        for b, p in enumerate(pieces_B):
            ids_BL[b, : len(p) + 2] = [self._cls, *p, self._sep]
            mask_BL[b, : len(p) + 2] = 1
        if self._onnx is not None:
            return self._onnx.pool(ids_BL, mask_BL)
        ids_BL, mask_BL = torch.from_numpy(ids_BL).to(self.device), torch.from_numpy(mask_BL).to(self.device)
        hidden_BLD = self._backbone(input_ids=ids_BL, attention_mask=mask_BL).last_hidden_state.float()
        m_BL1 = mask_BL.unsqueeze(-1).float()
        mean_BD = (hidden_BLD * m_BL1).sum(1) / m_BL1.sum(1)
        return torch.nn.functional.normalize(mean_BD, dim=-1).cpu().numpy()


def head_pieces(tokenizer, texts: list[str], room: int) -> list[list[int]]:
    """Each text's first `room` word pieces (`truncate` mode), tokenising only a head of each text."""
    heads = [_head(t, room * HEAD_CHARS_PER_PIECE) for t in texts]
    ids = [e.ids for e in tokenizer.encode_batch(heads, add_special_tokens=False)]
    for i in (i for i, h in enumerate(heads) if len(ids[i]) < room and len(h) < len(texts[i])):
        ids[i] = tokenizer.encode(texts[i], add_special_tokens=False).ids  # head too short
    return [p[:room] for p in ids]


def _head(text: str, n_chars: int) -> str:
    """The text up to the last whitespace before n_chars (the whole text if it has none there)."""
    if len(text) <= n_chars:
        return text
    cut = max(text.rfind(" ", 0, n_chars), text.rfind("\n", 0, n_chars), text.rfind("\t", 0, n_chars))
    return text[:cut] if cut > 0 else text


def _plain_tokenizer(hf_tokenizer):
    """The Rust tokenizer without the padding/truncation baked into tokenizer.json."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    tok.no_truncation()
    tok.no_padding()
    return tok


def _load_tokenizer(path: Path):
    """MiniLM's tokenizer and hidden size without its weights (the int8 graph holds those)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path)), int(AutoConfig.from_pretrained(str(path)).hidden_size)


def _load(path: Path, device: str, dtype):
    """The BERT backbone and tokenizer of the packaged sentence-transformers model, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weight-loading bar per call clutters every command's output

    model = SentenceTransformer(str(path), device=device)
    pooling = getattr(model[1], "pooling_mode", "mean")
    assert len(model) == 3 and pooling == "mean", f"unexpected MiniLM pipeline: {model}"
    backbone = model[0].auto_model.to(dtype).eval()
    return backbone, model.tokenizer
