"""Cross-validation folds over windows that keep neighbouring windows together.

Windows are numbered in corpus order, and with `concat` packing a document that crosses a window
boundary puts its head in one window and its tail at the start of the next: a head trained on
window w would have seen the text of the prefix of window w + 1. Folds are therefore made of
blocks of `block` consecutive windows, the blocks dealt to folds by a seeded permutation: only the
few windows at block edges can share a document across folds (about 1 / block of them), and every
fold still samples the whole corpus, whose order is often sorted by source or topic.
"""

from __future__ import annotations

import numpy as np


def blocked_folds(n: int, folds: int = 5, block: int = 64, seed: int = 0) -> np.ndarray:
    """[n] int8 fold of each window (0..folds-1); the same arguments give the same folds."""
    blocks = -(-n // block)
    fold_B = np.random.default_rng(seed).permutation(blocks) % folds
    return np.repeat(fold_B, block)[:n].astype(np.int8)
