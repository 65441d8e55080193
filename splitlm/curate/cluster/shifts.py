"""Exact price shifts of groups of clusters, one group after another (Gauss-Seidel).

Shifting the prices of a group G by delta (the others fixed) to where G holds `want` rows is the exact
minimisation of the dual along that direction: a row's margin for G is its best biased score inside G
minus its best outside; G keeps the `want` rows of largest margin. Margins come from the tracked best /
runner-up of each row plus the G columns of the scores, so a shift costs O(n |G|), not a pass over all
K scores; only rows whose best two clusters are both in G are re-scored against the clusters outside.
After each shift the state is updated for the rows that moved, so the next group sees them. A row's
best is always exact; its runner-up is a lower bound once a shift raised the runner-up's price (the
next-best outside G is not tracked), which only makes later margins of that row conservative.

Cost per shift (measured, 200k x K=256 scores): a column of a row-major score matrix is one cache line
per row (~5 ms), so `Columns` keeps a transposed copy once a solve has read TRANSPOSE_AFTER columns (the
copy costs about 70 column reads); the `want`-th largest margin is selected among the rows above a
threshold taken from a strided subsample (exact: the full selection runs when too few rows pass), not
by a partition of all n margins (~4 ms); membership is a per-cluster lookup, not `np.isin`.
"""

from __future__ import annotations

import numpy as np

from splitlm.curate.cluster.rule import Rule

TRANSPOSE_AFTER = 64  # column reads (in one price solve) after which the scores are transposed once
SUBSAMPLE = 16  # stride of the subsample that places the selection threshold


class Columns:
    """Columns of a score matrix: strided reads at first, rows of a transposed copy after TRANSPOSE_AFTER
    reads (the copy holds another n K float32 values while the solve runs)."""

    def __init__(self, scores_NK: np.ndarray):
        self.scores_NK, self.t_KN, self.reads = scores_NK, None, 0

    def take(self, members: np.ndarray) -> np.ndarray:
        """scores[:, members].T as a (|G|, n) float32 array."""
        self.reads += len(members)
        if self.t_KN is None and self.reads > TRANSPOSE_AFTER:
            self.t_KN = _transposed(self.scores_NK)
        if self.t_KN is not None:
            return self.t_KN[members]
        return np.ascontiguousarray(self.scores_NK[:, members].T)


class Sweep:
    """Mutable per-row best / runner-up state for a sequence of group shifts."""

    def __init__(self, scores_NK: np.ndarray, beta_K: np.ndarray, rule: Rule, columns: Columns | None = None):
        self.scores_NK, self.beta_K = scores_NK, np.array(beta_K, dtype=np.float64)
        self.columns = columns or Columns(scores_NK)
        self.labels, self.second = rule.labels.copy(), rule.second.copy()
        self.top = rule.top.astype(np.float32)
        self.second_val = self.top - rule.gap.astype(np.float32)

    def shift(self, members: np.ndarray, want: float) -> None:
        """Move the prices of `members` so that they hold `want` rows together (rounded), others fixed."""
        n, k = len(self.labels), self.scores_NK.shape[1]
        w = round(want)
        if w >= n or len(members) == k:
            return
        a_GN = self.columns.take(members) - self.beta_K[members].astype(np.float32)[:, None]
        if len(members) > 1:
            j = a_GN.argmax(0)
            ins_N, ins_idx = a_GN[j, np.arange(n)], members[j]
        else:
            ins_N, ins_idx = a_GN[0], np.full(n, members[0])
        flag_K = np.zeros(k, bool)
        flag_K[members] = True
        mine = flag_K[self.labels]
        out_N = np.where(mine, self.second_val, self.top)
        in_second = flag_K[self.second]
        redo = self._redo(members, mine & in_second, out_N)
        margin = ins_N - out_N
        if w <= 0:
            delta = float(margin.max()) + 1e-6
        else:
            upper, lower = _ranked(margin, w)
            delta = float(lower + upper) / 2
        self.beta_K[members] += delta
        self._update(ins_N - np.float32(delta), ins_idx, mine, in_second, margin > delta, out_N, redo)

    def _redo(self, members: np.ndarray, both: np.ndarray, out_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose best two are both in the group: their best outside it, re-scored (out_N updated)."""
        rows = np.flatnonzero(both)
        if not len(rows):
            return rows, rows
        a_RK = self.scores_NK[rows] - self.beta_K.astype(np.float32)
        a_RK[:, members] = -np.inf
        j = a_RK.argmax(1)
        out_N[rows] = a_RK[np.arange(len(rows)), j]
        return rows, j

    def _update(self, new_in, ins_idx, mine, in_second, keep, out_N, redo) -> None:
        """State after the shift: new_in is G's best score per row at the new prices, keep: margin > delta."""
        leave = np.flatnonzero(mine & ~keep)
        join = np.flatnonzero(~mine & keep)
        stay_in = np.flatnonzero(mine & keep)
        # rows outside G whose runner-up is in G, or whose runner-up G's best now beats
        near = np.flatnonzero(~mine & ~keep & (in_second | (new_in > self.second_val)))
        out_leave = self.second[leave]
        hit = np.isin(leave, redo[0]) if len(redo[0]) else np.zeros(len(leave), bool)
        out_leave[hit] = redo[1][np.searchsorted(redo[0], leave[hit])]
        both = stay_in[in_second[stay_in]]  # best and runner-up both in G: both moved
        self.second_val[both] -= self.top[both] - new_in[both]
        self.top[stay_in], self.labels[stay_in] = new_in[stay_in], ins_idx[stay_in]
        self.labels[leave], self.top[leave] = out_leave, out_N[leave]
        self.second[leave], self.second_val[leave] = ins_idx[leave], new_in[leave]
        self.second[join], self.second_val[join] = self.labels[join], self.top[join]
        self.labels[join], self.top[join] = ins_idx[join], new_in[join]
        self.second[near], self.second_val[near] = ins_idx[near], new_in[near]


def _ranked(margin_N: np.ndarray, w: int) -> tuple[float, float]:
    """The w-th and (w+1)-th largest margins (1 <= w < n), exactly as a partition of all of them gives."""
    n = len(margin_N)
    if (w + 1) * 4 * SUBSAMPLE < n:
        sub = margin_N[::SUBSAMPLE]
        r = len(sub) - 1 - min(len(sub) - 1, 2 * (w + 1) // SUBSAMPLE + 8)
        cand = margin_N[margin_N >= np.partition(sub, r)[r]]
        if len(cand) > w:  # every margin above the threshold is here: the top w + 1 are
            part = np.partition(cand, (len(cand) - w - 1, len(cand) - w))
            return part[len(cand) - w], part[len(cand) - w - 1]
    part = np.partition(margin_N, (n - w - 1, n - w))
    return part[n - w], part[n - w - 1]


def _transposed(scores_NK: np.ndarray, block: int = 1024) -> np.ndarray:
    """scores.T contiguous, copied by row blocks (3-4x faster than one strided copy)."""
    t_KN = np.empty((scores_NK.shape[1], len(scores_NK)), np.float32)
    for s in range(0, len(scores_NK), block):
        t_KN[:, s : s + block] = scores_NK[s : s + block].T
    return t_KN
