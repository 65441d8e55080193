"""Exact price shifts of groups of clusters, one group after another (Gauss-Seidel).

Shifting the prices of a group G by delta (the others fixed) to where G holds `want` rows is the exact
minimisation of the dual along that direction: a row's margin for G is its best biased score inside G
minus its best outside; G keeps the `want` rows of largest margin. Margins come from the tracked best /
runner-up of each row plus the G columns of the scores, so a shift costs O(n |G|), not a pass over all
K scores; only rows whose best two clusters are both in G are re-scored against the clusters outside.
After each shift the state is updated for the rows that moved, so the next group sees them. A row's
best is always exact; its runner-up is a lower bound once a shift raised the runner-up's price (the
next-best outside G is not tracked), which only makes later margins of that row conservative.
"""

from __future__ import annotations

import numpy as np

from splitlm.curate.cluster.rule import Rule


class Sweep:
    """Mutable per-row best / runner-up state for a sequence of group shifts."""

    def __init__(self, scores_NK: np.ndarray, beta_K: np.ndarray, rule: Rule):
        self.scores_NK, self.beta_K = scores_NK, np.array(beta_K, dtype=np.float64)
        self.labels, self.second = rule.labels.copy(), rule.second.copy()
        self.top = rule.top.astype(np.float32)
        self.second_val = self.top - rule.gap.astype(np.float32)

    def shift(self, members: np.ndarray, want: float) -> None:
        """Move the prices of `members` so that they hold `want` rows together (rounded), others fixed."""
        n = len(self.labels)
        w = round(want)
        if w >= n or len(members) == self.scores_NK.shape[1]:
            return
        a_NG = self.scores_NK[:, members] - self.beta_K[members].astype(np.float32)
        j = a_NG.argmax(1) if len(members) > 1 else np.zeros(n, np.int64)
        ins_N, ins_idx = a_NG[np.arange(n), j], members[j]
        mine = _member(self.labels, members)
        out_N = np.where(mine, self.second_val, self.top)
        redo = self._redo(members, mine, out_N)
        margin = ins_N - out_N
        if w <= 0:
            delta = float(margin.max()) + 1e-6
        else:
            part = np.partition(margin, (n - w - 1, n - w))
            delta = float(part[n - w - 1] + part[n - w]) / 2
        self.beta_K[members] += delta
        self._update(members, ins_N - np.float32(delta), ins_idx, mine, margin > delta, out_N, redo)

    def _redo(self, members: np.ndarray, mine: np.ndarray, out_N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose best two are both in the group: their best outside it, re-scored (out_N updated)."""
        rows = np.flatnonzero(mine & _member(self.second, members))
        if not len(rows):
            return rows, rows
        a_RK = self.scores_NK[rows] - self.beta_K.astype(np.float32)
        a_RK[:, members] = -np.inf
        j = a_RK.argmax(1)
        out_N[rows] = a_RK[np.arange(len(rows)), j]
        return rows, j

    def _update(self, members, new_in, ins_idx, mine, keep, out_N, redo) -> None:
        """State after the shift: new_in is G's best score per row at the new prices, keep: margin > delta."""
        in_second = _member(self.second, members)
        leave = np.flatnonzero(mine & ~keep)
        join = np.flatnonzero(~mine & keep)
        stay_in = np.flatnonzero(mine & keep)
        # rows outside G whose runner-up is in G, or whose runner-up G's best now beats
        near = np.flatnonzero(~mine & ~keep & (in_second | (new_in > self.second_val)))
        out_idx = self.second.copy()
        out_idx[redo[0]] = redo[1]
        both = stay_in[in_second[stay_in]]  # best and runner-up both in G: both moved
        self.second_val[both] -= self.top[both] - new_in[both]
        self.top[stay_in], self.labels[stay_in] = new_in[stay_in], ins_idx[stay_in]
        self.labels[leave], self.top[leave] = out_idx[leave], out_N[leave]
        self.second[leave], self.second_val[leave] = ins_idx[leave], new_in[leave]
        self.second[join], self.second_val[join] = self.labels[join], self.top[join]
        self.labels[join], self.top[join] = ins_idx[join], new_in[join]
        self.second[near], self.second_val[near] = ins_idx[near], new_in[near]


def _member(idx_N: np.ndarray, members: np.ndarray) -> np.ndarray:
    return idx_N == members[0] if len(members) == 1 else np.isin(idx_N, members)
