"""Training and validation data: torch Datasets over the memory-mapped cluster shards.

A shard row holds seq_len + 1 tokens. The whole row is the model input and its own label: Hugging
Face causal LMs shift labels inside, so a row trains seq_len next-token predictions. Every token
count splitlm reports is a count of these predicted tokens: one step = batch x seq_len tokens.

The mixture is every cluster's train shard, concatenated. A training stream is a fixed length
(steps x batch) walk over epochs of that pool; each epoch is a fresh permutation drawn from
(seed, epoch), so the order depends only on the seed and a resumed run sees the same examples.
A shard may be one `tokens.bin` or several `tokens-XXXXX.bin` parts behind one `tokens.json`
(`splitlm.schemas.tokens`); `TokenArray` reads either as one array, so each shard is one source here.
Rows are read from the memmap on demand: no copy of a shard is ever held in memory; the only
per-window state is the current epoch's permutation (4 bytes a window: 0.5 GB for DCLM-scale 1.2e8).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.schemas.layout import RunLayout, cluster_name
from splitlm.schemas.run import RunSummary
from splitlm.schemas.tokens import TokenArray, token_dtype


def read_run(run: Path) -> RunSummary:
    """What training needs from a curated run: its summary, which must include the clustering."""
    return RunSummary.read(run, clustered=True)


def shard_dir(run: Path, cluster: int, split: str, k: int) -> Path:
    return RunLayout(run).shard(cluster, k, split)


REDO = "re-curate the run (`curate cluster` into a fresh --out)"


def open_shard(run: Path, cluster: int, split: str, info: RunSummary) -> TokenArray:
    """A shard that matches its header (bytes), its index (rows) and the run (dtype, window width)."""
    folder = shard_dir(run, cluster, split, info.k)
    try:
        array = TokenArray(folder)
    except SchemaError as err:
        raise SchemaError(f"{err}; {REDO}") from err
    width, bin_path = array.header.width, array.paths[0] if len(array.paths) == 1 else folder / "tokens.json"
    if width != info.seq_len + 1:
        raise SchemaError(f"{bin_path}: windows of {width} tokens, the run manifest says {info.seq_len + 1}; {REDO}")
    if np.dtype(array.header.dtype) != token_dtype(info.vocab_size):
        want = token_dtype(info.vocab_size).name
        raise SchemaError(f"{bin_path}: {array.header.dtype} ids, a vocabulary of {info.vocab_size} needs {want}; {REDO}")
    index = folder / "index.parquet"
    try:
        rows = pq.ParquetFile(index).metadata.num_rows
    except (OSError, pa.ArrowException) as err:
        raise SchemaError(f"{index}: cannot read the shard index ({err}); {REDO}") from None
    if rows != len(array):
        raise SchemaError(f"{bin_path}: {len(array)} windows, {index.name} lists {rows}; {REDO}")
    return array


def check_shards(run: Path, info: RunSummary, branches: tuple[int, ...]) -> None:
    """Before any training: every shard opens and checks out, every cluster has validation windows
    (pretraining evaluates all of them) and every cluster in `branches` has training windows."""
    no_val = [k for k in range(info.k) if not len(open_shard(run, k, "val", info))]
    no_train = [k for k in range(info.k) if not len(open_shard(run, k, "train", info))]
    if no_val:
        raise ConfigError(f"{run}/shards: {_names(no_val, info.k)} no validation windows, and every cluster is "
                          "evaluated; re-curate with `curate cluster --val-min-windows N`")
    if len(no_train) == info.k:
        raise ConfigError(f"{run}/shards: no cluster has training windows; {REDO}")
    empty = [k for k in branches if k in no_train]
    if empty:
        raise ConfigError(f"{run}/shards: {_names(empty, info.k)} no training windows to branch on; leave "
                          "it out with --clusters, or re-curate with another --k")


def _names(clusters: list[int], k: int) -> str:
    """`cluster-03 has` / `cluster-00, cluster-03 have`."""
    return ", ".join(cluster_name(c, k) for c in clusters) + (" has" if len(clusters) == 1 else " have")


class ShuffledStream(Dataset):
    """`length` rows drawn epoch by epoch, without replacement, from the concatenated shards."""

    def __init__(self, shards: list[TokenArray], length: int, seed: int):
        self.shards = shards
        self.offsets = np.cumsum([0] + [len(s) for s in shards])
        self.pool = int(self.offsets[-1])
        if self.pool == 0:
            raise ConfigError(f"no training windows in {[str(s.folder) for s in shards]}")
        self.length, self.seed = length, seed
        self._epoch, self._perm = -1, np.empty(0, np.int64)

    def __len__(self) -> int:
        return self.length

    def _row(self, i: int) -> np.ndarray:
        epoch, pos = divmod(i, self.pool)
        if epoch != self._epoch:  # one permutation in memory at a time
            self._epoch = epoch
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.pool)
            self._perm = perm.astype(np.int32) if self.pool < 2**31 else perm
        j = int(self._perm[pos])
        shard = int(np.searchsorted(self.offsets, j, side="right")) - 1
        return self.shards[shard][j - int(self.offsets[shard])]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self._row(i).astype(np.int64))
        return {"input_ids": ids, "labels": ids}


class EvalWindows(Dataset):
    """Up to `limit` evenly spaced rows of one validation shard (all rows when limit is 0)."""

    def __init__(self, shard: TokenArray, limit: int = 0):
        n = len(shard)
        self.shard = shard
        self.rows = np.arange(n) if not limit or limit >= n else np.linspace(0, n - 1, limit).astype(np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(self.shard[int(self.rows[i])].astype(np.int64))
        return {"input_ids": ids, "labels": ids}
