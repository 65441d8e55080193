"""`train zeroshot` through lm-evaluation-harness: task configs, the `LM` subclass, and the whole command
against an independent scorer of the same templates (no lm-eval) on the pretrained-only checkpoint."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import socket

import datasets
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from splitlm.assets import _provision_zeroshot, zeroshot_path
from splitlm.core.errors import AssetError, ConfigError
from splitlm.train.zeroshot import harness, run, taskconfigs
from tests.train.zeroshot_fixtures import run_with_router, train_with_router

SPLIT_AT = 6 * 512
LIMIT = 2  # MMLU: 2 x 57 subjects
TASKS = "arc_easy,arc_challenge,piqa,hellaswag,sciq,boolq,winogrande,mmlu"


def read_docs(name: str, limit: int) -> list[dict]:
    """The first `limit` rows of the task's folder(s) in file order, read without lm-eval."""
    task = taskconfigs.TASKS[name]
    docs = []
    for folder in sorted(p for p in zeroshot_path().glob(task.folder) if p.is_dir()):
        docs += datasets.load_from_disk(str(folder)).select(range(limit)).to_list()
    return docs


class Recording:
    """A stand-in for `SplitModel` (unit tests only): K branches, routes by text length, scores by length."""

    def __init__(self, k: int = 2):
        self.folders = [f"branch-{c}" for c in range(k)]
        self.calls: list[tuple[int, int]] = []

    @property
    def k(self) -> int:
        return len(self.folders)

    def route(self, texts, by="router"):
        return np.asarray([len(t) % self.k for t in texts])

    def loglikelihood(self, pairs, routes):
        self.calls.append((int(routes[0]), len(pairs)))
        return [(-float(len(x)) - 0.1 * routes[0], False) for _, x in pairs]


def test_task_configs_are_the_harness_yamls_on_local_folders():
    from lm_eval.tasks._yaml_loader import load_yaml

    root = zeroshot_path()
    assert {t.name: t.route_field for t in taskconfigs.TASKS.values()} == {
        "arc_easy": "question", "arc_challenge": "question", "piqa": "goal", "hellaswag": "ctx", "sciq": "question",
        "boolq": "question", "winogrande": "sentence", "mmlu": "question"}  # fmt: skip
    for task in taskconfigs.TASKS.values():
        cfgs = taskconfigs.configs(root, task)
        assert len(cfgs) == (57 if task.name == "mmlu" else 1)
        own = load_yaml(taskconfigs.harness_yaml(task.yaml.format(subject="anatomy")))
        cfg = cfgs[1] if task.name == "mmlu" else cfgs[0]  # mmlu: abstract_algebra, anatomy, ...
        for key in ("task", "doc_to_text", "doc_to_choice", "output_type", "description"):
            assert cfg.get(key) == own.get(key), (task.name, key)
        assert cfg["doc_to_target"] == own["doc_to_target"] and cfg["dataset_path"].startswith(str(root))
        assert {m["metric"] for m in cfg["metric_list"]} == {"acc", "acc_norm"} and cfg["num_fewshot"] == 0
    assert "query" in taskconfigs.configs(root, taskconfigs.TASKS["hellaswag"])[0]["doc_to_text"]  # process_docs kept
    with pytest.raises(ConfigError, match="--tasks arc,piqa: unknown task arc"):
        taskconfigs.parse_tasks("arc,piqa")


def test_the_harness_renders_the_templates_and_routes_by_the_paper_field(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # any fetch fails loudly
    model, names = Recording(k=2), ["arc_easy", "piqa", "hellaswag", "boolq", "winogrande", "mmlu"]
    tasks = taskconfigs.build(zeroshot_path(), taskconfigs.parse_tasks(",".join(names)))
    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    seen = []

    class Spy(harness.SplitLM):
        def loglikelihood(self, requests, disable_tqdm=False):
            seen.extend(requests)
            return super().loglikelihood(requests, disable_tqdm)

    lm = Spy(model, harness.BranchScores())
    summary = run.harness_pass(lm, tasks, limit=2)
    assert {n: s["n"] for n, s in summary.items()} == {**dict.fromkeys(names[:-1], 2), "mmlu": 2 * 57}
    arc = read_docs("arc_easy", 2)
    first = [r for r in seen if r.task_name == "arc_easy" and r.doc_id == 0]
    assert [r.args for r in first] == [(f"Question: {arc[0]['question']}\nAnswer:", " " + c)
                                       for c in arc[0]["choices"]["text"]]
    wg = read_docs("winogrande", 1)[0]
    blank = wg["sentence"].index("_")
    assert [r.args for r in seen if r.task_name == "winogrande" and r.doc_id == 0] == [
        (wg["sentence"][:blank] + wg[o], " " + wg["sentence"][blank + 1:].strip()) for o in ("option1", "option2")]
    bq = read_docs("boolq", 1)[0]
    assert [r.args[1] for r in seen if r.task_name == "boolq" and r.doc_id == 0] == [" no", " yes"]
    assert seen[[r.task_name for r in seen].index("boolq")].args[0].endswith(f"\nQuestion: {bq['question']}?\nAnswer:")
    mmlu_subjects = {r.task_name for r in seen if r.task_name.startswith("mmlu_")}
    assert len(mmlu_subjects) == 57 and {r.doc_id for r in seen if r.task_name.startswith("mmlu_")} == {0, 1}
    # every request went to the branch of its question's routing field; one model call per branch
    field = {"arc_easy": "question", "piqa": "goal", "hellaswag": "ctx", "boolq": "question",
             "winogrande": "sentence"}  # fmt: skip
    for r in seen:
        text = r.doc[field.get(r.task_name, "question")]
        assert lm.routed[(r.task_name, r.doc_id)] == len(text) % 2
    assert sorted(c for c, _ in model.calls) == [0, 1] and sum(n for _, n in model.calls) == len(seen)
    # a fixed branch reuses what the routed pass scored: only the other branch's share is computed
    before = lm.scores.computed
    run.harness_pass(harness.SplitLM(model, lm.scores, branch=1), tasks, limit=2)
    assert lm.scores.computed - before == sum(1 for r in seen if lm.routed[(r.task_name, r.doc_id)] == 0)
    with pytest.raises(ConfigError, match="generate_until is not supported"):
        lm.generate_until([])


def test_the_provisioned_data_is_checked(tmp_path):
    listing = json.loads((zeroshot_path() / "files.json").read_text())
    assert any(n.startswith("hellaswag/none/validation/") for n in listing) and len(listing) == 21 + 57 * 3
    shutil.copytree(zeroshot_path(), tmp_path / "zeroshot")
    assert _provision_zeroshot(tmp_path, check_only=True) == tmp_path / "zeroshot"
    (tmp_path / "zeroshot" / "sciq/none/validation/state.json").write_text("{}")
    with pytest.raises(AssetError, match="zero-shot data missing or corrupt"):
        _provision_zeroshot(tmp_path, check_only=True)


# -- an independent scorer: the templates written again, scored from the model's full logits ------


def _independent_questions(name: str, doc: dict) -> tuple[list[tuple[str, str]], list[str], int]:
    """(context, continuation) per choice, the strings acc_norm divides by, gold."""
    if name in ("arc_easy", "arc_challenge"):
        ctx, ch = "Question: " + doc["question"] + "\nAnswer:", doc["choices"]["text"]
        gold = doc["choices"]["label"].index(doc["answerKey"])
    elif name == "piqa":
        ctx, ch, gold = "Question: " + doc["goal"] + "\nAnswer:", [doc["sol1"], doc["sol2"]], doc["label"]
    elif name == "hellaswag":
        def clean(t):
            return re.sub(r"\[.*?\]", "", t.strip().replace(" [title]", ". ")).replace("  ", " ")

        ctx = clean(doc["activity_label"] + ": " + doc["ctx_a"] + " " + doc["ctx_b"].capitalize())
        ch, gold = [clean(e) for e in doc["endings"]], int(doc["label"])
    elif name == "sciq":
        ctx = doc["support"].lstrip() + "\nQuestion: " + doc["question"] + "\nAnswer:"
        ch, gold = [doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"]], 3
    elif name == "boolq":
        ctx, ch, gold = doc["passage"] + "\nQuestion: " + doc["question"] + "?\nAnswer:", ["no", "yes"], int(doc["answer"])
    elif name == "winogrande":
        i = doc["sentence"].index("_")
        ch = [doc["sentence"][:i] + doc["option1"], doc["sentence"][:i] + doc["option2"]]
        rest = " " + doc["sentence"][i + 1:].strip()
        return [(c, rest) for c in ch], ch, int(doc["answer"]) - 1
    else:  # mmlu
        ctx = ("The following are questions (with answers) about " + doc["subject"].replace("_", " ") + ".\n\n"
               "Question: " + doc["question"].strip() + "\nAnswer:")
        ch, gold = doc["choices"], doc["answer"]
    return [(ctx, " " + c) for c in ch], list(ch), gold


def _independent_accuracy(train, name: str, docs: list[dict]) -> tuple[float, float]:
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    tok = Tokenizer.from_file(str(train / "router" / "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(train / "pretrain" / "final").eval()
    width = model.config.n_positions
    acc, norm = [], []
    for doc in docs:
        pairs, strings, gold = _independent_questions(name, doc)
        lls = []
        for ctx, cont in pairs:
            cut = len(ctx) - len(ctx.rstrip())  # trailing whitespace belongs to the continuation
            ctx, cont = ctx[: len(ctx) - cut], ctx[len(ctx) - cut :] + cont
            ctx_ids = tok.encode(ctx).ids
            cont_ids = tok.encode(ctx + cont).ids[len(ctx_ids):]
            ids = (ctx_ids + cont_ids)[-(width + 1):]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0].float(), -1)
            n = min(len(cont_ids), len(ids) - 1)  # a continuation longer than the window: its last tokens
            lls.append(sum(logp[len(ids) - 1 - n + k, t].item() for k, t in enumerate(ids[-n:])))
        acc.append(int(np.argmax(lls)) == gold)
        norm.append(int(np.argmax(np.array(lls) / np.array([len(s) for s in strings]))) == gold)
    return float(np.mean(acc)), float(np.mean(norm))


@pytest.fixture(scope="module")
def routed_train(tmp_path_factory, tiny_run, split_train):
    root = tmp_path_factory.mktemp("zeroshot")
    return train_with_router(split_train, run_with_router(tiny_run, root), root)


def test_train_zeroshot_writes_three_models_and_matches_an_independent_scorer(routed_train, monkeypatch):
    from splitlm.cli import train_zeroshot

    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    app = typer.Typer()
    train_zeroshot.register(app)
    app.callback()(lambda: None)
    result = CliRunner().invoke(app, ["zeroshot", str(routed_train), "--tasks", TASKS, "--limit", str(LIMIT),
                                      "--split-at", str(SPLIT_AT), "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    folder = routed_train / "zeroshot"
    with open(folder / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["task", "model", "split_at", "n", "acc", "acc_norm", "acc_stderr"]
    names = TASKS.split(",")
    assert sorted((r["task"], r["model"]) for r in rows) == sorted(
        (t, m) for t in names for m in ("pretrained", "split-routed", "best-branch"))
    assert {r["n"] for r in rows if r["task"] != "mmlu"} == {str(LIMIT)}
    assert {r["n"] for r in rows if r["task"] == "mmlu"} == {str(LIMIT * 57)}  # the first LIMIT of each subject
    for r in rows:
        if r["task"] != "mmlu":  # the harness's mean_stderr: sqrt(acc (1 - acc) / (n - 1))
            acc = float(r["acc"])
            assert float(r["acc_stderr"]) == pytest.approx(math.sqrt(acc * (1 - acc) / (LIMIT - 1)), abs=1e-5)
    assert (folder / "zeroshot.png").stat().st_size > 0 and not (folder / ".work").exists()
    assert f"| arc_easy | 3,072 | {LIMIT} |" in (folder / "results.md").read_text()
    # best-branch is the branch with the highest accuracy; every question routed somewhere
    with open(folder / "routing.csv") as fh:
        routing = list(csv.DictReader(fh))
    for name in names:
        mine = [r for r in routing if r["task"] == name]
        best = next(r for r in rows if r["task"] == name and r["model"] == "best-branch")
        assert float(best["acc"]) == max(float(r["acc"]) for r in mine)
        assert sum(int(r["routed"]) for r in mine) == int(best["n"])
    for name in names:
        acc, norm = _independent_accuracy(routed_train, name, read_docs(name, LIMIT))
        got = next(r for r in rows if r["task"] == name and r["model"] == "pretrained")
        assert abs(100 * float(got["acc"]) - 100 * acc) <= 0.5, name
        assert abs(100 * float(got["acc_norm"]) - 100 * norm) <= 0.5, name


def test_an_interrupted_run_resumes_where_it_stopped(routed_train, monkeypatch):
    from splitlm.train.split_model import SplitModel

    chosen = taskconfigs.parse_tasks("arc_easy,piqa")
    work = routed_train / "zeroshot" / ".work"
    shutil.rmtree(work, ignore_errors=True)
    real, calls = SplitModel.loglikelihood, []

    def counting(stop_at):
        def wrapped(self, requests, routes=None):
            calls.append(len(requests))
            if stop_at is not None and len(calls) == stop_at:
                raise KeyboardInterrupt
            return real(self, requests, routes)
        return wrapped

    def evaluate():
        return run.evaluate(routed_train, zeroshot_path(), chosen, 2, [SPLIT_AT], log=lambda _: None)

    monkeypatch.setattr(SplitModel, "loglikelihood", counting(stop_at=3))
    with pytest.raises(KeyboardInterrupt):
        evaluate()
    assert len(list(work.glob("*.npz"))) == 2  # pretrained and branch 0: one model call each
    calls.clear()
    monkeypatch.setattr(SplitModel, "loglikelihood", counting(stop_at=None))
    resumed = evaluate()
    assert len(calls) == 2  # branches 1 and 2; the routed pass reads the branch passes' scores
    shutil.rmtree(work)
    calls.clear()
    assert evaluate() == resumed and len(calls) == 4
    shutil.rmtree(work)
