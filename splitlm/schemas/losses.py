"""The losses table of a split run: `TRAIN/losses.csv` + `losses.parquet`, one row per evaluation.

`split_at` is -1 on the pretraining-only baseline; there `cluster` equals `eval_cluster`, because
the baseline evaluated on cluster k is the no-split point (D' = 0) of cluster k's law. A branch is
evaluated on its own cluster only (`cluster` = `eval_cluster`; its loss on the other clusters is
no point of any law, and `train eval` scores routed windows itself). Tokens are predicted tokens (steps x batch x
seq_len): `pt_tokens` before the split, `cpt_tokens` on the branch's cluster after it.
"""

from __future__ import annotations

import pyarrow as pa

LOSS_COLUMNS = (
    "size", "arch", "n_params", "n_params_non_embedding", "pt_tokens", "cpt_tokens",
    "cluster", "eval_cluster", "split_at", "step", "eval_loss",
)  # fmt: skip

LOSSES = pa.schema(
    [(name, pa.string()) for name in LOSS_COLUMNS[:2]]
    + [(name, pa.int64()) for name in LOSS_COLUMNS[2:-1]]
    + [("eval_loss", pa.float64())]
)
