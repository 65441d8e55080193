"""Routed evaluation: prefix routing picks the scoring model; scores, groups and report files."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from splitlm.core.errors import ConfigError
from splitlm.train import evaluate
from splitlm.train.budget import branch_dir
from splitlm.train.data import open_shard, read_run
from splitlm.tokenizer import load_tokenizer

PREFIX = 32


class ConstantRouter:
    """Sends every window to one cluster, and remembers what it was asked."""

    def __init__(self, cluster: int):
        self.cluster, self.seen = cluster, []
        self.prefix_tokens = 32

    def route_tokens(self, prefixes, prefix_tokens=32):
        self.seen = [list(p) for p in prefixes]
        return SimpleNamespace(clusters=np.full(len(prefixes), self.cluster, np.int32))


def _val(run):
    return np.concatenate([np.asarray(open_shard(run, k, "val", read_run(run)).tokens) for k in range(3)])


def test_score_matches_the_models_own_masked_loss(split_train, tiny_run):
    model = AutoModelForCausalLM.from_pretrained(split_train / "pretrain" / "final").eval()
    windows = _val(tiny_run)[:5]
    nll = evaluate._score(model, windows, PREFIX, batch_size=2, bf16=False)
    ids = torch.from_numpy(windows.astype(np.int64))
    labels = ids.clone()
    labels[:, :PREFIX] = -100  # the prefix is context only
    with torch.inference_mode():
        mean = model(input_ids=ids, labels=labels).loss.item()
    assert nll.sum() / (5 * (129 - PREFIX)) == pytest.approx(mean, rel=1e-5)


def test_routing_decides_which_branch_scores(split_train, tiny_run):
    router = ConstantRouter(cluster=1)
    rows = evaluate.routed_eval(split_train, tiny_run, router=router, prefix_tokens=PREFIX)
    windows = _val(tiny_run)
    assert router.seen == [w[:PREFIX].tolist() for w in windows]  # routed by the first 32 tokens only
    for split_at in (0, 3072):
        model = AutoModelForCausalLM.from_pretrained(branch_dir(split_train, split_at, 1, 3) / "final").eval()
        want = evaluate._score(model, windows, PREFIX, 8, bf16=evaluate.runner.use_bf16("auto")).sum()
        total = next(r for r in rows if (r["split_at"], r["kind"]) == (split_at, "all"))
        assert total["routed_loss"] == pytest.approx(want / (len(windows) * (129 - PREFIX)), abs=1e-4)
        assert total["routed_to_own"] == pytest.approx(8 / 32)  # cluster 1 holds 8 of the 32 val windows


def test_likelihood_routing_picks_the_branch_with_the_lowest_prefix_loss(split_train, tiny_run):
    rows = evaluate.routed_eval(split_train, tiny_run, router=ConstantRouter(cluster=0), prefix_tokens=PREFIX)
    windows = _val(tiny_run)
    eos = load_tokenizer(read_run(tiny_run).tokenizer).eos_id
    ids = torch.from_numpy(windows[:, :PREFIX].astype(np.int64))
    ids = torch.cat([torch.full((len(ids), 1), eos), ids], 1)  # each prefix scored after EOS, every token of it
    bf16 = evaluate.runner.use_bf16("auto")
    for split_at in (0, 3072):
        models = [AutoModelForCausalLM.from_pretrained(branch_dir(split_train, split_at, c, 3) / "final").eval()
                  for c in range(3)]
        with torch.inference_mode():
            prefix_nll = torch.stack([
                torch.nn.functional.cross_entropy(m(input_ids=ids).logits[:, :-1].transpose(1, 2), ids[:, 1:],
                                                  reduction="none").mean(1) for m in models], 1)
        choice = prefix_nll.argmin(1).numpy()
        rest = sum(evaluate._score(models[c], windows[choice == c], PREFIX, 8, bf16).sum() for c in range(3))
        total = next(r for r in rows if (r["split_at"], r["kind"]) == (split_at, "all"))
        assert total["likelihood_agree"] == pytest.approx(np.mean(choice == 0))
        want = rest / (len(windows) * (129 - PREFIX))
        assert total["likelihood_ppl"] == pytest.approx(math.exp(want), rel=1e-3)
        assert total["likelihood_change_pct"] == pytest.approx(100 * (math.exp(want - total["baseline_loss"]) - 1),
                                                              abs=0.1)
    off = evaluate.routed_eval(split_train, tiny_run, router=ConstantRouter(cluster=0), prefix_tokens=PREFIX,
                               likelihood=False)
    assert all(r["likelihood_ppl"] is None for r in off)
    assert [r["routed_ppl"] for r in off] == [r["routed_ppl"] for r in rows]


def test_report_groups_by_cluster_and_domain(split_train, tiny_run, overlap_router):
    rows = evaluate.routed_eval(split_train, tiny_run, router=overlap_router, prefix_tokens=PREFIX)
    groups = {(r["kind"], r["group"]) for r in rows if r["split_at"] == 3072}
    assert groups == {("all", "all"), ("cluster", "00"), ("cluster", "01"), ("cluster", "02"),
                      ("domain", "tiny"), ("domain", "code"),
                      ("domain", "wiki"), ("domain", "c4")}  # fmt: skip
    by = {(r["split_at"], r["kind"], r["group"]): r for r in rows}
    for r in rows:
        assert r["tokens"] == r["windows"] * (129 - PREFIX)
        assert r["routed_ppl"] == pytest.approx(math.exp(r["routed_loss"]), rel=1e-3)
        assert 0.0 <= r["routed_to_own"] <= 1.0
    # cluster 02 is the union of its two newsgroups: token-weighted means agree.
    c2 = by[(3072, "cluster", "02")]
    parts = [by[(3072, "domain", d)] for d in ("wiki", "c4")]
    assert c2["windows"] == sum(p["windows"] for p in parts)
    assert c2["baseline_loss"] == pytest.approx(np.mean([p["baseline_loss"] for p in parts]), abs=2e-4)
    assert (split_train / "routed" / "routed_eval.csv").read_text().count("\n") == len(rows) + 1
    assert (split_train / "routed" / "routed_eval.png").stat().st_size > 10_000


def test_bad_prefix_and_missing_branches_are_user_errors(split_train, tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="--prefix-tokens"):
        evaluate.routed_eval(split_train, tiny_run, router=ConstantRouter(0), prefix_tokens=128)
    with pytest.raises(ConfigError, match="no finished model"):
        evaluate.routed_eval(tmp_path, tiny_run, router=ConstantRouter(0))


@pytest.mark.slow
def test_real_pipeline_router_split_and_routed_eval(news_path, tmp_path):
    """`curate cluster` (real MiniLM router) -> `train split` -> `train eval`, through the CLIs."""
    import csv
    import gzip
    import json
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    taken = {"comp.graphics": 0, "rec.sport.hockey": 0, "sci.space": 0}
    corpus = tmp_path / "news.jsonl"
    with gzip.open(news_path, "rt") as src, corpus.open("w") as dst:
        for line in src:  # 30 short posts (under 1,500 characters) from each of three newsgroups
            post = json.loads(line)
            group = post["meta"]["newsgroup"]
            if taken.get(group, 30) < 30 and len(post["text"]) < 1500:
                taken[group] += 1
                dst.write(line)
    run, train = tmp_path / "run", tmp_path / "train"
    steps = [
        [bin_dir / "curate", "cluster", corpus, "--out", run, "--k", "3", "--seq-len", "64", "--val-fraction", "0.2",
         "--domain-field", "meta.newsgroup"],
        [bin_dir / "train", "split", run, "--out", train, "--total-tokens", "3072", "--split-at", "1536",
         "--batch-size", "4", "--eval-every", "1536", "--eval-windows", "4", "--threads", "1"],
        [bin_dir / "train", "eval", train, "--run", run],
    ]  # fmt: skip
    for cmd in steps:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Routed evaluation" in proc.stdout
    rows = list(csv.DictReader((train / "routed" / "routed_eval.csv").open()))
    total = next(r for r in rows if r["kind"] == "all")
    assert int(total["tokens"]) == int(total["windows"]) * (65 - 32)
    # The router embeds the decoded prefix: prefixes taken from the right windows route home often.
    assert float(total["routed_to_own"]) > 0.5
    assert {r["group"] for r in rows if r["kind"] == "domain"} == {"comp.graphics", "rec.sport.hockey", "sci.space"}
    assert {r["router"] for r in rows} == {"centroid"}  # each result records the router that chose


def test_cluster_groups_use_three_digits_from_k_101():
    own, routed = np.array([0, 26, 100]), np.array([0, 26, 3])
    nll = np.ones(3)
    rows = evaluate._group_rows(0, own, ["a", "b", "c"], routed, nll, nll, 10, n_clusters=101)
    assert sorted(r["group"] for r in rows if r["kind"] == "cluster") == ["000", "026", "100"]
    rows = evaluate._group_rows(0, own[:2], ["a", "b"], routed[:2], nll[:2], nll[:2], 10, n_clusters=27)
    assert sorted(r["group"] for r in rows if r["kind"] == "cluster") == ["00", "26"]


class ListRouter:
    """Routes the i-th prefix it is given to `clusters[i]`."""

    prefix_tokens = 32

    def __init__(self, clusters):
        self.clusters = np.asarray(clusters, np.int32)

    def route_tokens(self, prefixes, prefix_tokens=32):
        assert len(prefixes) == len(self.clusters)
        return SimpleNamespace(clusters=self.clusters)


def test_by_domain_scores_each_label_with_the_branch_it_routes_to_most(split_train, tiny_run):
    import csv

    info = read_run(tiny_run)
    _, _, labels = evaluate._val_shards(tiny_run, info)
    labels = np.asarray(labels)
    # tiny: 5 of 8 windows to cluster 1 (its top branch), 3 to cluster 0; every other window to cluster 2.
    routes = np.full(len(labels), 2)
    tiny = np.flatnonzero(labels == "tiny")
    routes[tiny[:5]], routes[tiny[5:]] = 1, 0
    rows = evaluate.routed_eval(split_train, tiny_run, router=ListRouter(routes), prefix_tokens=PREFIX, by_domain=True)
    got = list(csv.DictReader((split_train / "routed" / "by_domain.csv").open()))
    assert {(int(r["split_at"]), r["domain"]) for r in got} == {(s, d) for s in (0, 3072)
                                                                 for d in ("tiny", "code", "wiki", "c4")}
    by = {(r["split_at"], r["group"]): r for r in rows if r["kind"] == "domain"}
    windows = _val(tiny_run)
    bf16 = evaluate.runner.use_bf16("auto")
    for r in got:
        split_at, domain = int(r["split_at"]), r["domain"]
        # pretrained-only and routed perplexities agree with the routed evaluation's domain groups
        assert float(r["pretrained_ppl"]) == pytest.approx(by[(split_at, domain)]["baseline_ppl"], rel=1e-3)
        assert float(r["routed_ppl"]) == pytest.approx(by[(split_at, domain)]["routed_ppl"], rel=1e-3)
        top = 1 if domain == "tiny" else 2
        assert r["top_branch"] == f"{top:02d}"
        assert float(r["top_share"]) == pytest.approx(5 / 8 if domain == "tiny" else 1.0, abs=1e-3)
        # the top branch scores every window of the label, those routed elsewhere included
        model = AutoModelForCausalLM.from_pretrained(branch_dir(split_train, split_at, top, 3) / "final").eval()
        idx = np.flatnonzero(labels == domain)
        nll = evaluate._score(model, windows[idx], PREFIX, 8, bf16=bf16).sum()
        assert float(r["top_branch_ppl"]) == pytest.approx(math.exp(nll / (len(idx) * (129 - PREFIX))), rel=1e-3)
    table = (split_train / "routed" / "by_domain.md").read_text()
    assert table.count("\n| ") == len(got) + 1 and "| 3,072 | tiny | 8 | 01 (0.62) |" in table


def test_by_domain_label_field_must_be_an_index_column(split_train, tiny_run):
    with pytest.raises(ConfigError, match="--label-field"):
        evaluate.routed_eval(split_train, tiny_run, router=ConstantRouter(0), by_domain=True, label_field="topic")
