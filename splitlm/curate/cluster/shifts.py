"""Exact price shifts of groups of clusters, one group after another (Gauss-Seidel).

Shifting the prices of a group G by delta (the others fixed) to where G holds `want` rows is the exact
minimisation of the dual along that direction: a row's margin for G is its best biased score inside G
minus its best outside; G keeps the `want` rows of largest margin. Margins come from the rule's best /
second-best columns plus the G columns of the scores, so a shift costs O(n |G|), not a pass over all K
scores; only rows whose best two clusters are both in G are re-scored against the clusters outside.
After each shift the rule's arrays are updated for the rows that moved, so the next group sees them
(a row that leaves G is given G's best as its runner-up: an upper bound on its gap, fine for a sweep).
"""

from __future__ import annotations

import numpy as np

from splitlm.curate.cluster.rule import Rule


class Sweep:
    """Mutable per-row best / runner-up state for a sequence of group shifts."""

    def __init__(self, scores_NK: np.ndarray, beta_K: np.ndarray, labels, second, top, gap):
        self.scores_NK, self.beta_K = scores_NK, np.array(beta_K, dtype=np.float64)
        self.labels, self.second = labels.copy(), second.copy()
        self.top, self.gap = top.astype(np.float32), gap.astype(np.float32)

    def rule(self):
        """The tracked state as a prices.Rule (its dual is not tracked: nan)."""
        sizes = np.bincount(self.labels, minlength=self.scores_NK.shape[1])
        return Rule(self.labels, self.second, self.top, self.gap, sizes, float("nan"))

    def shift(self, members: np.ndarray, want: float) -> None:
        """Move the prices of `members` so that they hold `want` rows together (rounded), others fixed."""
        n = len(self.labels)
        w = round(want)
        if w >= n or len(members) == self.scores_NK.shape[1]:
            return
        ins_N, ins_idx = self._inside(members)
        mine = np.isin(self.labels, members)
        out_N, out_idx = self._outside(members, mine)
        margin = ins_N - out_N
        if w <= 0:
            delta = float(margin.max()) + 1e-6
        else:
            part = np.partition(margin, (n - w - 1, n - w))
            delta = float(part[n - w - 1] + part[n - w]) / 2
        self._apply(members, delta, mine, ins_N, ins_idx, out_N, out_idx, margin)

    def _inside(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a_NG = self.scores_NK[:, members] - self.beta_K[members].astype(np.float32)
        j = a_NG.argmax(1)
        return a_NG[np.arange(len(a_NG)), j], members[j]

    def _outside(self, members: np.ndarray, mine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best biased score and cluster outside the group: the rule's best, or its runner-up, or a
        re-score of the rows whose best two are both inside."""
        out_N, out_idx = self.top.copy(), self.labels.copy()
        out_N[mine], out_idx[mine] = (self.top - self.gap)[mine], self.second[mine]
        redo = np.flatnonzero(mine & np.isin(self.second, members))
        if len(redo):
            a_RK = self.scores_NK[redo] - self.beta_K.astype(np.float32)
            a_RK[:, members] = -np.inf
            j = a_RK.argmax(1)
            out_N[redo], out_idx[redo] = a_RK[np.arange(len(redo)), j], j
        return out_N, out_idx

    def _apply(self, members, delta, mine, ins_N, ins_idx, out_N, out_idx, margin) -> None:
        self.beta_K[members] += delta
        new_in = ins_N - np.float32(delta)
        leave, join = mine & (margin < delta), ~mine & (margin > delta)
        stay_in, stay_out = mine & ~leave, ~mine & ~join
        in_second = np.isin(self.second, members)
        second_val = np.where(in_second, new_in, self.top - self.gap)
        # rows still outside G: G's best may now be their runner-up
        upd = stay_out & (in_second | (new_in > second_val))
        self.gap[upd] = self.top[upd] - np.maximum(np.where(in_second, -np.inf, second_val), new_in)[upd]
        self.second[upd & (new_in >= second_val)] = ins_idx[upd & (new_in >= second_val)]
        # rows still inside G: their best moved by delta, a runner-up outside did not
        self.gap[stay_in & ~in_second] -= np.float32(delta)
        self.top[stay_in] = new_in[stay_in]
        self.labels[stay_in] = ins_idx[stay_in]
        # rows that left G go to their best outside, G's best is their runner-up
        self.second[leave], self.gap[leave] = ins_idx[leave], (out_N - new_in)[leave]
        self.labels[leave], self.top[leave] = out_idx[leave], out_N[leave]
        # rows that joined G: their old best is their runner-up
        self.second[join], self.gap[join] = self.labels[join], (new_in - self.top)[join]
        self.labels[join], self.top[join] = ins_idx[join], new_in[join]
