"""`train zeroshot`: templates, data, the provisioned asset, and the whole command against an independent scorer."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import sys

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from splitlm.assets import _provision_zeroshot, zeroshot_path
from splitlm.core.errors import AssetError, ConfigError
from splitlm.train.zeroshot import data, score, tasks
from tests.train.zeroshot_fixtures import run_with_router, train_with_router

SPLIT_AT = 6 * 512
LIMIT = 3  # MMLU: 3 x 57 subjects
TASKS = "arc_easy,arc_challenge,piqa,hellaswag,sciq,boolq,winogrande,mmlu"


def test_templates_follow_the_harness():
    arc = tasks.arc({"question": "Q?", "choices": {"text": ["a", "b"], "label": ["1", "2"]}, "answerKey": "2"})
    assert arc.contexts == ["Question: Q?\nAnswer:"] * 2 and arc.continuations == [" a", " b"] and arc.gold == 1
    hs = tasks.hellaswag({"activity_label": "Cooking", "ctx_a": "A man [title] cuts.", "ctx_b": "he", "ctx": "c",
                          "endings": [" slices [step] bread.  ", "eats"], "label": "1"})
    assert hs.contexts[0] == "Cooking: A man. cuts. He" and hs.choices == ["slices bread.", "eats"]
    assert hs.route_text == "c" and hs.gold == 1
    wg = tasks.winogrande({"sentence": "Ann beat Bo so _ won.", "option1": "Ann", "option2": "Bo", "answer": "1"})
    assert wg.contexts == ["Ann beat Bo so Ann", "Ann beat Bo so Bo"] and wg.continuations == [" won."] * 2
    assert wg.gold == 0 and wg.choices == wg.contexts
    bq = tasks.boolq({"passage": "P.", "question": "is it", "answer": True})
    assert bq.contexts[0] == "P.\nQuestion: is it?\nAnswer:" and bq.continuations == [" no", " yes"] and bq.gold == 1
    sq = tasks.sciq({"support": "  S.", "question": "Q", "distractor1": "x", "distractor2": "y", "distractor3": "z",
                     "correct_answer": "w"})
    assert sq.contexts[0] == "S.\nQuestion: Q\nAnswer:" and sq.gold == 3 and sq.route_text == "Q"
    mm = tasks.mmlu({"question": " Q ", "subject": "high_school_biology", "choices": ["a", "b", "c", "d"], "answer": 2})
    assert mm.contexts[0].startswith("The following are questions (with answers) about high school biology.\n\n")
    assert {t.name: t.route_field for t in tasks.TASKS.values()} == {
        "arc_easy": "question", "arc_challenge": "question", "piqa": "goal", "hellaswag": "ctx", "sciq": "question",
        "boolq": "question", "winogrande": "sentence", "mmlu": "question"}  # fmt: skip
    with pytest.raises(ConfigError, match="--tasks arc,piqa: unknown task arc"):
        tasks.parse_tasks("arc,piqa")


def test_acc_norm_and_stderr():
    q = tasks.Question(["c", "c"], [" ab", " abcdef"], ["ab", "abcdef"], 1, "c")
    acc, norm = score.correct([q, q], [np.array([-2.0, -3.0]), np.array([-4.0, -3.0])])
    assert acc.tolist() == [0.0, 1.0] and norm.tolist() == [1.0, 1.0]  # -2/2 < -3/6
    assert score.stderr(np.array([0.0, 1.0, 1.0, 1.0])) == pytest.approx(math.sqrt(0.25 / 4))


def test_limit_is_the_first_questions_in_file_order_per_mmlu_subject(monkeypatch):
    root = zeroshot_path()
    full = data.read_docs(root, tasks.TASKS["piqa"])
    assert data.read_docs(root, tasks.TASKS["piqa"], limit=5) == full[:5] and len(full) == 1838
    mmlu = data.read_docs(root, tasks.TASKS["mmlu"], limit=2)
    subjects = [d["subject"] for d in mmlu]
    assert len(set(subjects)) == 57 and len(mmlu) == 114 and subjects == sorted(subjects)
    monkeypatch.setitem(sys.modules, "datasets", None)  # without `datasets`: pyarrow reads the same rows
    assert data.read_docs(root, tasks.TASKS["piqa"], limit=5) == full[:5]


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
            targets = ids[-len(cont_ids):]
            lls.append(sum(logp[len(ids) - 1 - len(cont_ids) + k, t].item() for k, t in enumerate(targets)))
        acc.append(int(np.argmax(lls)) == gold)
        norm.append(int(np.argmax(np.array(lls) / np.array([len(s) for s in strings]))) == gold)
    return float(np.mean(acc)), float(np.mean(norm))


@pytest.fixture(scope="module")
def routed_train(tmp_path_factory, tiny_run, split_train):
    root = tmp_path_factory.mktemp("zeroshot")
    return train_with_router(split_train, run_with_router(tiny_run, root), root)


def test_train_zeroshot_writes_three_models_and_matches_an_independent_scorer(routed_train):
    from splitlm.cli import train_zeroshot

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
    assert (folder / "zeroshot.png").stat().st_size > 0
    assert f"| arc_easy | 3,072 | {LIMIT} |" in (folder / "results.md").read_text()
    # best-branch is the branch with the highest accuracy; every question routed somewhere
    with open(folder / "routing.csv") as fh:
        routing = list(csv.DictReader(fh))
    for name in names:
        mine = [r for r in routing if r["task"] == name]
        best = next(r for r in rows if r["task"] == name and r["model"] == "best-branch")
        assert float(best["acc"]) == max(float(r["acc"]) for r in mine)
        assert sum(int(r["routed"]) for r in mine) == int(best["n"])
    root = zeroshot_path()
    for name in names:
        docs = data.read_docs(root, tasks.TASKS[name], limit=LIMIT)
        acc, norm = _independent_accuracy(routed_train, name, docs)
        got = next(r for r in rows if r["task"] == name and r["model"] == "pretrained")
        assert abs(100 * float(got["acc"]) - 100 * acc) <= 0.5, name
        assert abs(100 * float(got["acc_norm"]) - 100 * norm) <= 0.5, name


def test_an_interrupted_run_resumes_where_it_stopped(routed_train, monkeypatch):
    from splitlm.train.zeroshot import run

    questions = run.load_questions(zeroshot_path(), [tasks.TASKS["arc_easy"], tasks.TASKS["piqa"]], 2)
    work = routed_train / "zeroshot" / ".work"
    shutil.rmtree(work, ignore_errors=True)
    real, calls = score.choice_logprobs, []

    def counting(model, qs, branch, stop_at=None):
        calls.append(branch)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt
        return real(model, qs, branch)

    monkeypatch.setattr(score, "choice_logprobs", lambda m, q, b: counting(m, q, b, stop_at=3))
    with pytest.raises(KeyboardInterrupt):
        run.evaluate(routed_train, questions, [SPLIT_AT], log=lambda _: None)
    assert len(list(work.glob("*.npy"))) == 2  # the two finished passes
    calls.clear()
    monkeypatch.setattr(score, "choice_logprobs", lambda m, q, b: counting(m, q, b))
    resumed = run.evaluate(routed_train, questions, [SPLIT_AT], log=lambda _: None)
    assert len(calls) == 2 + 3 * 2 - 2  # pretrained x 2 tasks + 3 branches x 2 tasks, minus the saved two
    shutil.rmtree(work)
    assert run.evaluate(routed_train, questions, [SPLIT_AT], log=lambda _: None) == resumed
    shutil.rmtree(work)
