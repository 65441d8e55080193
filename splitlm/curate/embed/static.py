"""The static embedder: one vector per word piece, distilled offline from our MiniLM (model2vec).

Distillation (`provision_static`, run by `splitlm assets`): model2vec feeds every word piece of
MiniLM's vocabulary through the shipped MiniLM on CPU as `[CLS] piece [SEP]`, mean-pools the output,
reduces the 384-d vectors to `PCA_DIMS` = 256 with PCA and weights each row by SIF (Zipf rank as a
frequency estimate, `SIF_COEFFICIENT`), and stores the table as float32 with a copy of MiniLM's
tokenizer (minus its `[unused*]` pieces and [CLS]/[SEP]/[MASK]). The folder,
`CACHE/static/all-MiniLM-L6-v2-m2v/`, is built in a temporary folder and renamed into place; it is
a model2vec model (`model2vec.StaticModel.from_pretrained` reads it) plus `distill.json`, which
records the recipe, the MiniLM weights it came from and the sha256 of `model.safetensors`. That
sha256 is what the embedder spec, router spec, manifests and cards record. It is not pinned in code:
distilling twice in two fresh processes gives the same bytes on the same machine (whatever the
thread settings: the PCA's BLAS, which rounds differently on 1 and 2 threads, is held to one), but
another CPU may round MiniLM's arithmetic differently. It takes 2-6 minutes on 2 busy cores.

The recipe was measured, not copied: SIF 1e-4 beat none, 3e-4 and 1e-3 on both 20 Newsgroups
(K=20, purity ~0.31 against 0.17-0.29) and the demo corpus (K=6, ~0.87 against 0.78-0.85); PCA to
256, 128, 64 or none (384) stayed within about two standard deviations of each other over k-means
seeds, so 256 (model2vec's default) was kept: two thirds of the table and summing work of 384.

Encoding: a text's vector is the sum of its pieces' rows, L2-normalised (the direction of model2vec's
mean), float32. `[UNK]` pieces are dropped, as model2vec does; a text with no pieces left (empty,
whitespace) reads as `[PAD]`, the row MiniLM gave `[CLS] [PAD] [SEP]`, its view of nothing. The two
modes mean, for a static model:
- `mean` (the default): the whole text, every word piece averaged, however long; cost grows only
  with the tokenizer's and a table lookup's work, so a 2,048-token window costs little.
- `truncate`: only the text's first `max_pieces - 2` word pieces (254 by default), the very head
  MiniLM reads in its `truncate` mode, averaged.
There is no chunking: a static model has no context window, so `max_pieces` only sets `truncate`'s cut.

Speed: the Rust tokenizer encodes a batch; each text's pieces become a sparse row of counts
(numpy), and one sparse-times-dense product (scipy) sums the table's rows, each distinct piece read
once per text; no Python loop runs per piece, and memory stays at the batch's distinct pieces
however long a text is. Bytes: a text's vector sums count x row in piece-id order, so it depends on
its own pieces only, not on the other texts in its batch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from splitlm.core.cache import cache_dir
from splitlm.core.errors import AssetError, SchemaError
from splitlm.core.hashing import sha256_file
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.model import MODEL_ID as MINILM_ID
from splitlm.curate.embed.model import head_pieces, model_path

STATIC_MODEL_ID = "splitlm/static-all-MiniLM-L6-v2"
FOLDER = Path("static") / "all-MiniLM-L6-v2-m2v"
PCA_DIMS = 256
SIF_COEFFICIENT = 1e-4
REMOVE_PATTERN = r"\[unused\d+\]"
RECIPE = {"pca_dims": PCA_DIMS, "sif_coefficient": SIF_COEFFICIENT, "token_remove_pattern": REMOVE_PATTERN,
          "dtype": "float32", "device": "cpu", "pooling": "mean"}
WEIGHTS = "model.safetensors"
RECORD = "distill.json"
HINT = "run `splitlm assets` (or `make assets`) to distil it from the shipped MiniLM"


def provision_static(root: Path, check_only: bool = False) -> Path:
    """The distilled model's folder under `root`, distilling it first if it is missing or stale."""
    folder = Path(root) / FOLDER
    problem = _check(folder)
    if problem is None:
        return folder
    if check_only:
        raise AssetError(f"static embedder {problem} at {folder}: {HINT}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        distill(tmp)
        tmp.chmod(0o755)  # mkdtemp's 0700 would stay with the renamed folder
        if folder.exists():  # stale or corrupt: set aside, then replaced
            old = Path(tempfile.mkdtemp(prefix=".old-", dir=folder.parent))
            os.replace(folder, old / "model")
            shutil.rmtree(old)
        try:
            os.replace(tmp, folder)
        except OSError:
            if _check(folder) is not None:  # a concurrent provision finished a valid copy first: keep it
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def distill(out: Path, token_remove_pattern: str = REMOVE_PATTERN) -> dict:
    """Distil MiniLM into `out` (an empty or missing folder); returns the record written beside it.

    `token_remove_pattern` drops vocabulary pieces that match it; the shipped model drops only
    `[unused*]`, a test cuts the vocabulary down to check determinism quickly.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model2vec.distill import distill_from_model
    from threadpoolctl import threadpool_limits
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    source = model_path()
    model = AutoModel.from_pretrained(str(source))
    tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True)
    with threadpool_limits(limits=1, user_api="blas"):  # the PCA's BLAS rounds differently on 1 and 2 threads
        static = distill_from_model(model, tokenizer, device="cpu", pca_dims=PCA_DIMS,
                                    sif_coefficient=SIF_COEFFICIENT, token_remove_pattern=token_remove_pattern,
                                    quantize_to="float32")
    # model2vec names the source by its local path; record the model instead, so the bytes do not
    # depend on where the package is installed.
    static.config["tokenizer_name"] = MINILM_ID
    static.base_model_name = MINILM_ID
    static.max_length = None  # model2vec's own encode then reads whole texts too, as `mean` does
    out = Path(out)
    static.save_pretrained(out, model_name=STATIC_MODEL_ID)
    record = {"model_id": STATIC_MODEL_ID, "source": MINILM_ID, "source_sha256": _sha256(source / "model.safetensors"),
              "recipe": dict(RECIPE, token_remove_pattern=token_remove_pattern),
              "weights_sha256": sha256_file(out / WEIGHTS), "dimension": int(static.dim)}
    (out / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def _check(folder: Path) -> str | None:
    """None when `folder` holds a complete distillation of the installed MiniLM by this recipe."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return "missing"
    if not (folder / "tokenizer.json").exists() or not (folder / WEIGHTS).exists():
        return "incomplete"
    if record.get("recipe") != RECIPE:
        return "made by another recipe"
    if record.get("source_sha256") != _sha256(model_path() / "model.safetensors"):
        return "distilled from other MiniLM weights"
    if _sha256(folder / WEIGHTS) != record.get("weights_sha256"):
        return f"corrupt ({WEIGHTS} differs from its sha256 in {RECORD})"
    return None


@lru_cache(maxsize=8)
def _sha256_at(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_at(str(path), st.st_size, st.st_mtime_ns)


class StaticEmbedder:
    """The distilled table and its tokenizer; `encode` maps texts to unit vectors, same interface as `Embedder`."""

    def __init__(self, config: EmbedConfig | None = None, root: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.config = config or EmbedConfig(name="static")
        self.folder = provision_static(root or cache_dir(), check_only=True)
        self.weights_sha256 = _sha256(self.folder / WEIGHTS)
        self.table_VD = np.ascontiguousarray(load_file(str(self.folder / WEIGHTS))["embeddings"], dtype=np.float32)
        self.dimension = int(self.table_VD.shape[1])
        self._tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._unk = self._tokenizer.token_to_id("[UNK]")
        self._pad = self._tokenizer.token_to_id("[PAD]")
        if self._pad is None or len(self.table_VD) != self._tokenizer.get_vocab_size():
            raise SchemaError(f"{self.folder}: {WEIGHTS} has {len(self.table_VD)} rows for a tokenizer of "
                              f"{self._tokenizer.get_vocab_size()} pieces; delete the folder and {HINT}")

    def spec(self) -> dict:
        return {
            "model_id": STATIC_MODEL_ID,
            "weights_sha256": self.weights_sha256,
            "mode": self.config.read_mode,
            "precision": "fp32",
            "max_pieces": self.config.max_pieces,
            "dimension": self.dimension,
            "pooling": "mean",
            "normalized": True,
        }

    def model_pieces(self, texts: list[str]) -> list[list[int]]:
        """The piece ids each text's vector averages (after the mode's cut, without [UNK]; [PAD] for none)."""
        if not texts:
            return []
        ids_P, lens_N = self._pieces(texts)
        return [a.tolist() for a in np.split(ids_P, np.cumsum(lens_N)[:-1])]

    def encode(self, texts: list[str]) -> np.ndarray:
        """[n, dimension] float32, unit rows, in the order of `texts`."""
        from scipy.sparse import csr_matrix

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids_P, lens_N = self._pieces(texts)
        n, vocab = len(texts), len(self.table_VD)
        # Each text's piece counts as a sparse row, sorted by piece id; times the table, each text's
        # vector is the sum of count x row in piece-id order: its own pieces fix its bytes.
        key_U, count_U = np.unique(np.repeat(np.arange(n), lens_N) * vocab + ids_P, return_counts=True)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(key_U // vocab, minlength=n), out=indptr[1:])
        counts_NV = csr_matrix((count_U.astype(np.float32), key_U % vocab, indptr), shape=(n, vocab))
        out_ND = np.asarray(counts_NV @ self.table_VD, dtype=np.float32)
        return out_ND / np.linalg.norm(out_ND, axis=1, keepdims=True)

    def _pieces(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All texts' piece ids, concatenated (int64 [P]), and each text's count (int64 [n], >= 1)."""
        if self.config.read_mode == "truncate":
            ids = head_pieces(self._tokenizer, texts, self.config.max_pieces - 2)
        else:
            ids = [e.ids for e in self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        lens_N = np.fromiter((len(p) for p in ids), dtype=np.int64, count=len(ids))
        flat_P = np.concatenate([np.array(p, dtype=np.int64) for p in ids])
        keep_P = flat_P != self._unk
        if not keep_P.all() or not lens_N.all():
            owner_P = np.repeat(np.arange(len(ids)), lens_N)[keep_P]
            flat_P = flat_P[keep_P]
            lens_N = np.bincount(owner_P, minlength=len(ids)).astype(np.int64)
            empty_N = lens_N == 0
            if empty_N.any():  # a text with no pieces reads as [PAD]
                at = np.cumsum(lens_N)[empty_N]
                flat_P = np.insert(flat_P, at, self._pad)
                lens_N[empty_N] = 1
        return flat_P, lens_N

