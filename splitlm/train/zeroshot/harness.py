"""`SplitLM`: an lm-evaluation-harness `LM` over a `SplitModel`, and the log-likelihoods it shares between passes.

`SplitLM(model, scores)` routes every request by its question's field (the request's `doc`, the
field of its task: `taskconfigs.Task.route_field`), `SplitLM(model, scores, branch=c)` sends every
request to branch `c` (`best-branch`, and the pretrained-only model, whose one "branch" is 0).
Only `loglikelihood` is implemented: the zero-shot tasks are multiple choice.

`BranchScores` computes each (branch, context, continuation) once, a whole branch's requests in
one `SplitModel.loglikelihood` call (so each branch is loaded once per pass and batched by length):
the routed pass after the K fixed-branch passes reads every score from memory. Each computed
batch is also saved in `work/<key>.npz` (key: the checkpoint's manifest and the requests), so a
rerun after an interruption scores only what is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lm_eval.api.model import LM

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError
from splitlm.core.hashing import sha256_file, sha256_json
from splitlm.train.zeroshot.taskconfigs import task_of


def folder_key(folder: Path) -> str:
    manifest = folder / "checkpoint.json"
    return sha256_file(manifest if manifest.exists() else folder / "model.safetensors")


class BranchScores:
    """(log-likelihood, is greedy) per (model folder, context, continuation), each computed once."""

    def __init__(self, work: Path | None = None):
        self.work = work
        self.memo: dict[tuple[str, str, str], tuple[float, bool]] = {}
        self.computed = 0  # requests scored by a model (not read from memory or work/)

    def get(self, model, pairs: list[tuple[str, str]], routes: list[int]) -> list[tuple[float, bool]]:
        out: list[tuple[float, bool] | None] = [None] * len(pairs)
        for c in sorted(set(routes)):
            key = str(model.folders[c])
            idx = [i for i, r in enumerate(routes) if r == c]
            missing = list(dict.fromkeys(pairs[i] for i in idx if (key, *pairs[i]) not in self.memo))
            if missing:
                for pair, score in zip(missing, self._score(model, c, missing)):
                    self.memo[(key, *pair)] = score
            for i in idx:
                out[i] = self.memo[(key, *pairs[i])]
        return out  # type: ignore[return-value]

    def _score(self, model, c: int, pairs: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        path = None
        if self.work is not None:
            path = self.work / f"{sha256_json([folder_key(model.folders[c]), pairs])[:24]}.npz"
            if path.exists():
                saved = np.load(path)
                return [(float(a), bool(b)) for a, b in zip(saved["loglikelihood"], saved["greedy"])]
        scores = model.loglikelihood(pairs, routes=[c] * len(pairs))
        self.computed += len(pairs)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, loglikelihood=np.asarray([s for s, _ in scores], np.float64),
                         greedy=np.asarray([g for _, g in scores], bool))
        return scores


class SplitLM(LM):
    """A `SplitModel` for the harness: each request routed by its question (or all to one `branch`)."""

    def __init__(self, model, scores: BranchScores, branch: int | None = None, route_by: str = "router"):
        super().__init__()
        if branch is not None and not 0 <= branch < model.k:
            raise ConfigError(f"branch {branch}: this split model has {model.k}")
        self.model, self.scores, self.branch, self.route_by = model, scores, branch, route_by
        self.routed: dict[tuple[str, int], int] = {}  # (harness task, doc id) -> branch, for routing.csv

    def routes(self, requests) -> list[int]:
        texts = [str(r.doc[task_of(r.task_name).route_field]) for r in requests]
        unique = list(dict.fromkeys(texts))
        branch_of = dict(zip(unique, (int(b) for b in self.model.route(unique, by=self.route_by))))
        routes = [branch_of[t] for t in texts]
        for r, b in zip(requests, routes):
            self.routed[(r.task_name, r.doc_id)] = b
        return routes

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [(str(r.args[0]), str(r.args[1])) for r in requests]
        routes = [self.branch] * len(pairs) if self.branch is not None else self.routes(requests)
        return self.scores.get(self.model, pairs, routes)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise ConfigError("SplitLM: loglikelihood_rolling is not supported (train zeroshot runs multiple-choice "
                          "tasks only); use `train eval` for perplexity")

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise ConfigError("SplitLM: generate_until is not supported (train zeroshot runs multiple-choice tasks "
                          "only); use SplitModel.generate")
