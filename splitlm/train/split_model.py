"""A split model you can use: the router and the K branches of one split point, behind one object.

`SplitModel.from_pretrained(TRAIN, split_at=...)` reads TRAIN only: the router that `train split`
copied into `TRAIN/router/` (`split.copy_router`; its files are checked against `copied.json`), the
tokenizer, and the branches `branches/split-<tokens>/cluster-XX/final`. A TRAIN folder written
before routers were copied falls back to the run named in `split.json`, and says so.
`SplitModel.pretrained_only(TRAIN)` is the comparison: the pretraining run's final model, one
"branch" that every text routes to.

- `route(texts)`: the branch of each text, by the embedding router on its first `prefix_tokens`
  tokens, or with `by="likelihood"` the branch that gives that prefix the lowest loss (BTM, SMALLTALK LM).
- `loglikelihood(requests)`: per (context, continuation) the summed log-probability of the
  continuation and whether it is the greedy continuation, lm-evaluation-harness conventions (the
  context's trailing spaces move to the continuation; inputs longer than the model's context are
  cut from the left). Each request is scored by the branch of `routes` (default: its context's).
- `generate(prompt)`: greedy or sampled continuation by the branch the prompt routes to.

Branches load lazily; at most `max_loaded` stay in memory (least recently used goes first).
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from splitlm.core.errors import ConfigError, SchemaError
from splitlm.core.hashing import sha256_file
from splitlm.curate.cluster.router import Router
from splitlm.schemas.layout import ROUTER_DIR, ROUTER_RECORD, TrainLayout
from splitlm.schemas.run import RunSummary
from splitlm.tokenizer import load_tokenizer
from splitlm.train import checkpoint
from splitlm.train.loss import hidden_states

ROUTE_BY = ("router", "likelihood")


def _train_config(train: Path) -> dict:
    path = TrainLayout(train).config
    if not path.exists():
        raise ConfigError(f"{train}: no split.json; not a TRAIN folder written by `train split`")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise SchemaError(f"{path}: not a split config ({err})") from None


def load_router(train: Path) -> tuple[Router | None, str, int, str]:
    """(router or None, LM tokenizer spec, K, note) from TRAIN/router, else the run split.json names."""
    folder = Path(train) / ROUTER_DIR
    record_path = folder / ROUTER_RECORD
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text())
            files, k, tokenizer = record["files"], int(record["k"]), record["tokenizer"]
        except (ValueError, KeyError, TypeError) as err:
            raise SchemaError(f"{record_path}: not a router record ({err}); rerun `train split`") from None
        for name, want in files.items():
            path = folder / name
            if not path.is_file() or sha256_file(path) != want:
                raise SchemaError(f"{path}: missing or differs from {ROUTER_RECORD} (sha256); rerun `train split` "
                                  "with the same flags to copy the router again")
        tokenizer = str(folder / tokenizer) if tokenizer == "tokenizer.json" else tokenizer
        router = Router.load(folder)
        router._tokenizer = load_tokenizer(tokenizer)  # the copied file, not the path router.json names
        return router, tokenizer, k, ""
    run = Path(_train_config(train)["run"])
    info = RunSummary.read(run)
    note = f"{train} has no {ROUTER_DIR}/ (written before `train split` copied routers): routing with {run}'s router"
    try:
        return Router.load(run), info.tokenizer, info.k, note
    except SchemaError:
        return None, info.tokenizer, info.k, f"{train} has no {ROUTER_DIR}/ and {run} has no router"


def _max_length(model) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or config.max_position_embeddings)


class SplitModel:
    """K branches of one split point behind a router (or the pretraining-only model: K = 1)."""

    def __init__(self, folders: list[Path], router: Router | None, tokenizer: str, split_at: int | None,
                 max_loaded: int = 2, batch_size: int = 8, note: str = ""):
        if max_loaded < 1:
            raise ConfigError(f"--max-loaded {max_loaded}: keep at least 1 branch in memory")
        self.folders = folders
        self.router = router
        self.tokenizer = load_tokenizer(tokenizer)
        self.split_at = split_at
        self.max_loaded = max_loaded
        self.batch_size = batch_size
        self.note = note
        self._loaded: OrderedDict[int, object] = OrderedDict()
        self.loads = 0  # how many times a branch was read from disk

    @property
    def k(self) -> int:
        return len(self.folders)

    @property
    def is_split(self) -> bool:
        return self.split_at is not None

    @property
    def prefix_tokens(self) -> int:
        return self.router.prefix_tokens if self.router is not None else 32

    @classmethod
    def from_pretrained(cls, train: Path | str, split_at: int | None = None, max_loaded: int = 2,
                        batch_size: int = 8, quiet: bool = False) -> SplitModel:
        """The branches of `split_at` (tokens; None: the only split point TRAIN has) and TRAIN's router."""
        train = Path(train)
        splits = TrainLayout(train).split_points()
        if not splits:
            raise ConfigError(f"{train}: no branches; run `train split` first")
        if split_at is None:
            if len(splits) > 1:
                raise ConfigError(f"--split-at: {train} has several split points ({', '.join(map(str, splits))}); "
                                  "pick one")
            split_at = splits[0]
        if split_at not in splits:
            raise ConfigError(f"--split-at {split_at}: {train} has branches at {', '.join(map(str, splits))}")
        router, tokenizer, k, note = load_router(train)
        if router is None:
            raise SchemaError(f"{note}; run `curate cluster`, then `train split` again")
        if router.k != k:
            raise SchemaError(f"{train / ROUTER_DIR}: a router with {router.k} clusters for a run of {k}")
        folders = [TrainLayout(train).branch(split_at, c, k) / "final" for c in range(k)]
        if note and not quiet:
            print(f"note: {note}", file=sys.stderr, flush=True)
        return cls(folders, router, tokenizer, split_at, max_loaded, batch_size, note)

    @classmethod
    def pretrained_only(cls, train: Path | str, batch_size: int = 8) -> SplitModel:
        """The all-pretraining baseline (TRAIN/pretrain/final) with the same interface; K = 1."""
        train = Path(train)
        _, tokenizer, _, _ = load_router(train)
        return cls([train / "pretrain" / "final"], None, tokenizer, None, 1, batch_size)

    # -- models -----------------------------------------------------------------------------------

    def branch(self, c: int):
        """Branch `c`'s model, loaded (and checked) on first use; evicts the least recently used."""
        if c in self._loaded:
            self._loaded.move_to_end(c)
            return self._loaded[c]
        if not 0 <= c < self.k:
            raise ConfigError(f"branch {c}: this split model has {self.k}")
        while len(self._loaded) >= self.max_loaded:
            self._loaded.popitem(last=False)
        folder = self.folders[c]
        if not (folder / checkpoint.WEIGHTS).exists():
            raise ConfigError(f"{folder}: no finished branch (trained with --clusters?); a text routed to it "
                              "cannot be scored; train that branch with `train split`")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one "Loading weights" bar per branch otherwise
        model = checkpoint.load(folder).eval()
        self.loads += 1
        self._loaded[c] = model
        return model

    @property
    def loaded(self) -> list[int]:
        return list(self._loaded)

    # -- routing ----------------------------------------------------------------------------------

    def route(self, texts: Sequence[str], by: str = "router", prefix_tokens: int | None = None) -> np.ndarray:
        """The branch [n] of every text, by its first `prefix_tokens` tokens (None: the router's own)."""
        if by not in ROUTE_BY:
            raise ConfigError(f"--route-by {by}: choose one of {', '.join(ROUTE_BY)}")
        texts = list(texts)
        if self.k == 1 or not texts:
            return np.zeros(len(texts), np.int64)
        n = self.prefix_tokens if prefix_tokens is None else prefix_tokens
        if by == "router":
            return np.asarray(self.router.route(texts, n).clusters, np.int64)
        prefixes = [ids[:n] for ids in self.tokenizer.encode_batch(texts)]
        return self.likelihood_scores(prefixes).argmin(1)

    def likelihood_scores(self, prefixes: list[list[int]]) -> np.ndarray:
        """[n, K] mean NLL of each token prefix under every branch (the first token is given EOS before it)."""
        eos = self.tokenizer.eos_id
        requests = [([eos], ids) for ids in prefixes]
        out = np.zeros((len(prefixes), self.k), np.float64)
        lengths = np.asarray([max(1, len(p)) for p in prefixes], np.float64)
        for c in range(self.k):
            logprob, _ = self._score_tokens(self.branch(c), requests)
            out[:, c] = -logprob / lengths
        return out

    # -- scoring ----------------------------------------------------------------------------------

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """lm-evaluation-harness's split: trailing spaces of the context go to the continuation."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
        whole = self.tokenizer.encode(context + continuation)
        context_ids = self.tokenizer.encode(context) if context else []
        if not context_ids:
            return [self.tokenizer.eos_id], whole
        return context_ids, whole[len(context_ids):]

    def loglikelihood(self, requests: Sequence[tuple[str, str]], routes: Sequence[int] | None = None
                      ) -> list[tuple[float, bool]]:
        """Per (context, continuation): (sum of log p(continuation | context), continuation is greedy).

        `routes` gives each request's branch; None routes every request by its context.
        """
        requests = list(requests)
        routes = self.route([c for c, _ in requests]) if routes is None else np.asarray(routes, np.int64)
        if len(routes) != len(requests):
            raise ConfigError(f"routes: {len(routes)} for {len(requests)} requests")
        encoded = [self.encode_pair(c, x) for c, x in requests]
        logprob, greedy = np.zeros(len(requests)), np.zeros(len(requests), bool)
        order = sorted(range(len(requests)), key=lambda i: routes[i])  # one branch at a time
        for c in sorted({int(r) for r in routes}):
            idx = [i for i in order if routes[i] == c]
            lp, gr = self._score_tokens(self.branch(c), [encoded[i] for i in idx])
            logprob[idx], greedy[idx] = lp, gr
        return [(float(a), bool(b)) for a, b in zip(logprob, greedy)]

    def _score_tokens(self, model, encoded: list[tuple[list[int], list[int]]]) -> tuple[np.ndarray, np.ndarray]:
        """Summed log-probabilities and greedy flags of token continuations, longest inputs batched first."""
        import torch

        limit = _max_length(model)
        logprob, greedy = np.zeros(len(encoded)), np.zeros(len(encoded), bool)
        rows = []
        for context, continuation in encoded:
            whole = (context + continuation)[-(limit + 1):]
            rows.append((whole[:-1], min(len(continuation), len(whole) - 1)))
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
        with torch.inference_mode():
            for lo in range(0, len(order), self.batch_size):
                batch = order[lo:lo + self.batch_size]
                width = max(len(rows[i][0]) for i in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                for j, i in enumerate(batch):
                    ids[j, :len(rows[i][0])] = torch.tensor(rows[i][0])
                hidden = hidden_states(model, ids)  # the head runs on the continuation positions only
                head = model.get_output_embeddings()
                for j, i in enumerate(batch):
                    inp, n = rows[i]
                    target = torch.tensor(encoded[i][1][-n:])
                    logp = torch.log_softmax(head(hidden[j, len(inp) - n : len(inp)]).float(), dim=-1)
                    logprob[i] = logp.gather(1, target[:, None]).sum().item()
                    greedy[i] = bool((logp.argmax(-1) == target).all())
        return logprob, greedy

    def generate(self, prompt: str, max_new_tokens: int = 32, greedy: bool = True, seed: int = 0,
                 branch: int | None = None) -> str:
        """The continuation of `prompt` by the branch its prefix routes to (or `branch`)."""
        import torch

        c = int(self.route([prompt])[0]) if branch is None else branch
        model = self.branch(c)
        ids = (self.tokenizer.encode(prompt) or [self.tokenizer.eos_id])
        room = _max_length(model) - max_new_tokens
        if room < 1:
            raise ConfigError(f"--max-new-tokens {max_new_tokens}: the model reads at most {_max_length(model)} tokens")
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids[-room:]]), max_new_tokens=max_new_tokens, do_sample=not greedy,
                                 pad_token_id=self.tokenizer.eos_id, eos_token_id=self.tokenizer.eos_id)
        return self.tokenizer.decode(out[0, len(ids[-room:]):].tolist())
