"""The losses table of a split run, its baseline-vs-split summary, and routed evaluation.

Routed evaluation (paper Sec. 3.1, App. D): each validation window of every cluster is routed by
its first `prefix_tokens` tokens; the remaining seq_len + 1 - prefix_tokens tokens are scored (each
given everything before it) by the branch of the routed cluster, and by the pretraining-only model
for comparison. Losses are token means; perplexity is exp(loss). Results are grouped by the
window's own cluster and by its domain label (paper Table 4 reports domains), plus `all`.

Likelihood routing (BTM, SMALLTALK LM) is reported beside the router: every branch scores the same
prefix, the window goes to the branch that gives it the lowest loss (`SplitModel.likelihood_scores`),
and the rest of the window is scored as above. `likelihood_agree` is the share of windows where it
picks the router's branch. The prefix itself is never scored, so neither routing sees what it is judged on.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers.utils import logging as hf_logging

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError
from splitlm.curate.cluster.router import Router
from splitlm.schemas.layout import TrainLayout, cluster_number
from splitlm.schemas.losses import LOSSES
from splitlm.schemas.run import RunSummary
from splitlm.train import checkpoint, evaluate_domains, flags, routed_report, runner
from splitlm.train import data as data_mod
from splitlm.train.config import export_dir
from splitlm.train.loss import token_nll
from splitlm.train.split_model import SplitModel


def collect_losses(out: Path) -> pa.Table:
    paths = [out / "pretrain" / "losses.jsonl", *sorted(out.glob("branches/*/*/losses.jsonl"))]
    rows = [row for path in paths for row in runner.read_rows(path)]
    rows.sort(key=lambda r: (r["split_at"], r["cluster"], r["eval_cluster"], r["step"]))
    return pa.Table.from_pylist(rows, schema=LOSSES)


def write_losses(out: Path) -> Path:
    """TRAIN/losses.parquet and TRAIN/losses.csv from every job's rows; returns the CSV path."""
    import pyarrow.csv as pacsv

    table = collect_losses(out)
    layout = TrainLayout(out)
    with atomic_path(layout.losses_parquet) as tmp:
        pq.write_table(table, tmp)
    with atomic_path(layout.losses_csv) as tmp:
        pacsv.write_csv(table, tmp)
    return layout.losses_csv


def compare_final(table: pa.Table) -> list[dict]:
    """Per split point and cluster: the baseline's loss on it at the split run's tokens vs its branch's last loss.

    `split_total` is the split model's realised D_T = D + K * D' (K = the clusters evaluated). The
    pretraining run evaluates at every such point (`TrainJob.eval_at`), so the baseline is read at
    exactly `split_total` tokens; a run made before that reads the baseline's last evaluation.
    """
    rows = table.to_pylist()
    k_total = len({r["eval_cluster"] for r in rows})
    last: dict[tuple, dict] = {}
    baseline: dict[tuple, dict] = {}
    for r in rows:
        if r["cluster"] != r["eval_cluster"]:
            continue
        key = (r["split_at"], r["cluster"])
        if key not in last or r["step"] > last[key]["step"]:
            last[key] = r
        if r["split_at"] < 0:
            baseline[r["cluster"], r["pt_tokens"]] = r
    out = []
    for (split_at, k), r in sorted(last.items()):
        total = split_at + k_total * r["cpt_tokens"]
        base = baseline.get((k, total), last.get((-1, k)))
        if split_at < 0 or base is None:
            continue
        out.append({
            "split_at": split_at, "cluster": k, "baseline_tokens": base["pt_tokens"], "baseline_loss": base["eval_loss"],
            "split_total": total, "split_loss": r["eval_loss"],
        })  # fmt: skip
    return out


def baseline_model_dir(train: Path, split_total_tokens: int) -> Path:
    """The pretraining-only weights at the split run's D + K * D': its export there, else its final weights."""
    export = export_dir(train / "pretrain", split_total_tokens)
    return export if (export / checkpoint.WEIGHTS).exists() else train / "pretrain" / "final"


def _score(model, windows_NT: np.ndarray, start: int, batch_size: int, bf16: bool) -> np.ndarray:
    """Summed NLL of tokens start..T-1 of every window, each predicted from all tokens before it."""
    nll_N = np.zeros(len(windows_NT), np.float64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(windows_NT), batch_size):
            ids_BT = torch.from_numpy(windows_NT[i : i + batch_size].astype(np.int64))
            nll_N[i : i + batch_size] = token_nll(model, ids_BT, start).sum(1).double().numpy()
    return nll_N


def _load(folder: Path):
    """A checkpoint that `_verify_all` has checked: loaded without hashing it again."""
    return checkpoint.load(folder, check=False).eval()


def _verify_all(train: Path, k: int) -> list[int]:
    """Check every saved model before the slow work: the baseline must exist; returns the split points."""
    baseline = train / "pretrain" / "final"
    checkpoint.require(baseline)
    splits = TrainLayout(train).split_points()
    if not splits:
        raise ConfigError(f"{train}: no branches; run `train split` first")
    for split_at in splits:  # branches trained with --clusters may be missing: refused only if routed to
        for c in range(k):
            folder = TrainLayout(train).branch(split_at, c, k) / "final"
            if (folder / checkpoint.WEIGHTS).exists():
                checkpoint.verify(folder)
    checkpoint.verify(baseline)
    return splits


def _score_one(model, shards, n: int, start: int, batch_size: int, bf16: bool) -> np.ndarray:
    """NLL sums [N] of every window by one model."""
    return _score_routed(shards, np.zeros(n, np.int64), lambda _: model, start, batch_size, bf16)


def _branch_tokens(train: Path, split_at: int, k: int) -> int:
    """D': the tokens each branch of a split point trained (from a finished branch's done.json)."""
    for c in range(k):
        done = TrainLayout(train).branch(split_at, c, k) / "done.json"
        if done.exists():
            return int(json.loads(done.read_text())["tokens"])
    raise ConfigError(f"{TrainLayout(train).root}/branches: no finished branch at split {split_at:,}; rerun `train split`")


def _val_shards(run: Path, info: RunSummary, label_field: str = "domain"):
    """(memory-mapped val shards, own cluster [N], label [N]), windows in shard order.

    `label_field` is a column of the shards' index.parquet; `domain` holds the run's --domain-field values.
    """
    shards, clusters, domains = [], [], []
    for k in range(info.k):
        shard = data_mod.open_shard(run, k, "val", info)
        path = data_mod.shard_dir(run, k, "val", info.k) / "index.parquet"
        names = pq.ParquetFile(path).schema_arrow.names
        if label_field not in names:
            raise ConfigError(f"{path}: no column {label_field!r} for --label-field (it has {', '.join(names)})")
        index = pq.read_table(path, columns=[label_field])
        shards.append(shard)
        clusters += [k] * len(shard)
        domains += [str(d) if d is not None else "(none)" for d in index.column(label_field).to_pylist()]
    return shards, np.asarray(clusters), domains


def _score_routed(shards, route_N: np.ndarray, load, start: int, batch_size: int, bf16: bool) -> np.ndarray:
    """NLL sums [N] with each window scored by `load(route_N[i])`; one model in memory at a time.

    Windows routed to a negative target are not scored (their sum stays 0).
    """
    offsets = np.cumsum([0] + [len(s) for s in shards])
    nll_N = np.zeros(offsets[-1], np.float64)
    for target in np.unique(route_N[route_N >= 0]):
        model = load(int(target))
        for shard, lo, hi in zip(shards, offsets[:-1], offsets[1:]):
            rows = np.flatnonzero(route_N[lo:hi] == target)
            if len(rows):  # memmap fancy indexing reads only these windows
                nll_N[lo + rows] = _score(model, shard.tokens[rows], start, batch_size, bf16)
    return nll_N


def _likelihood_pass(train: Path, split_at: int, info: RunSummary, prefixes: list[list[int]], shards,
                     routed: np.ndarray, split_N: np.ndarray, load, start: int, batch_size: int, bf16: bool):
    """(each window's lowest-loss branch on its prefix [N], NLL sums [N] under that routing), or (None, None)
    when a branch of `split_at` is missing (`--clusters`). Windows routed as the router did are not rescored."""
    folders = [TrainLayout(train).branch(split_at, c, info.k) / "final" for c in range(info.k)]
    if not all((f / checkpoint.WEIGHTS).exists() for f in folders):
        return None, None
    model = SplitModel(folders, None, info.tokenizer, split_at, max_loaded=1, batch_size=batch_size)
    lik_routed = model.likelihood_scores(prefixes).argmin(1)
    other = np.where(lik_routed != routed, lik_routed, -1)
    return lik_routed, np.where(other < 0, split_N, _score_routed(shards, other, load, start, batch_size, bf16))


def _group_rows(split_at, own, domains, routed, base_N, split_N, n_scored, n_clusters: int,
                lik_routed=None, lik_N=None) -> list[dict]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (k, d) in enumerate(zip(own, domains)):
        groups[("cluster", cluster_number(int(k), n_clusters))].append(i)
        groups[("domain", d)].append(i)
        groups[("all", "all")].append(i)
    rows = []
    for (kind, name), idx in sorted(groups.items()):
        tokens = len(idx) * n_scored
        base, routed_loss = base_N[idx].sum() / tokens, split_N[idx].sum() / tokens
        rows.append(dict(
            split_at=split_at, kind=kind, group=name, windows=len(idx), tokens=tokens,
            routed_to_own=float(np.mean(routed[idx] == own[idx])),
            baseline_loss=round(base, 4), routed_loss=round(routed_loss, 4),
            baseline_ppl=round(math.exp(base), 3), routed_ppl=round(math.exp(routed_loss), 3),
            ppl_change_pct=round(100 * (math.exp(routed_loss) / math.exp(base) - 1), 2),
        ))  # fmt: skip
        lik_loss = lik_N[idx].sum() / tokens if lik_N is not None else None
        rows[-1].update(
            likelihood_agree=round(float(np.mean(lik_routed[idx] == routed[idx])), 4) if lik_N is not None else None,
            likelihood_ppl=round(math.exp(lik_loss), 3) if lik_N is not None else None,
            likelihood_change_pct=round(100 * (math.exp(lik_loss) / math.exp(base) - 1), 2) if lik_N is not None
            else None,
        )
    return rows


def routed_eval(
    train: Path, run: Path, router=None, prefix_tokens: int | None = None, batch_size: int = 8,
    by_domain: bool = False, label_field: str = "domain", likelihood: bool = True,
) -> list[dict]:
    """Rows per split point x group; writes TRAIN/routed/routed_eval.csv and .png.

    `prefix_tokens` None routes by the router's own prefix length. `by_domain` also writes
    TRAIN/routed/by_domain.csv and .md (`evaluate_domains`), labels from `label_field`. `likelihood`
    also routes by likelihood (`likelihood_*` columns; empty when off, or when a split point lacks a branch).
    """
    flags.number("--batch-size", batch_size, least=1, meaning="windows per forward pass")
    info = data_mod.read_run(run)
    splits = _verify_all(train, info.k)
    router = router or Router.load(run)
    prefix_tokens = router.prefix_tokens if prefix_tokens is None else prefix_tokens
    if not 0 < prefix_tokens < info.seq_len:
        raise ConfigError(f"--prefix-tokens {prefix_tokens}: must be between 1 and seq_len - 1 = {info.seq_len - 1}")
    hf_logging.disable_progress_bar()  # one "Loading weights" bar per branch otherwise
    shards, own, domains = _val_shards(run, info, label_field)
    if not len(own):
        raise ConfigError(f"{run}/shards: no validation windows in any cluster; re-curate with "
                          "`curate cluster --val-min-windows N`")
    prefixes = [row.tolist() for shard in shards for row in shard.tokens[:, :prefix_tokens]]
    routed = np.asarray(router.route_tokens(prefixes, prefix_tokens).clusters, dtype=np.int64)
    bf16 = runner.use_bf16("auto")
    baselines: dict[Path, np.ndarray] = {}  # the baseline at each split run's D + K * D' (usually one model)
    rows, domain_rows = [], []
    n_scored = info.seq_len + 1 - prefix_tokens
    top = evaluate_domains.top_branches(domains, routed, info.k) if by_domain else {}
    for split_at in splits:
        folder = baseline_model_dir(train, split_at + info.k * _branch_tokens(train, split_at, info.k))
        if folder not in baselines:
            baselines[folder] = _score_one(_load(folder), shards, len(routed), prefix_tokens, batch_size, bf16)
        base_N = baselines[folder]
        load = lambda c: _load(TrainLayout(train).branch(split_at, c, info.k) / "final")  # noqa: E731
        split_N = _score_routed(shards, routed, load, prefix_tokens, batch_size, bf16)
        lik_routed, lik_N = (_likelihood_pass(train, split_at, info, prefixes, shards, routed, split_N, load,
                                              prefix_tokens, batch_size, bf16) if likelihood else (None, None))
        rows += [{**row, "prefix_tokens": prefix_tokens, "router": getattr(router, "kind", type(router).__name__)}
                 for row in _group_rows(split_at, own, domains, routed, base_N, split_N, n_scored, info.k,
                                        lik_routed, lik_N)]
        if by_domain:
            extra_N = _score_routed(shards, evaluate_domains.extra_routes(domains, routed, top), load, prefix_tokens,
                                    batch_size, bf16)
            domain_rows += evaluate_domains.domain_rows(split_at, domains, routed, top, base_N, split_N, extra_N,
                                                        n_scored, info.k)
    routed_report.write(train / "routed", rows)
    if by_domain:
        evaluate_domains.write(train / "routed", domain_rows, label_field)
    return rows
