"""The zero-shot tasks: lm-evaluation-harness (0.4.x) cloze templates, and the field each question routes by.

Every task is multiple choice: a question gives one (context, continuation) request per choice,
the continuation being the target delimiter " " plus the choice, and the gold index. Accuracy
picks the choice of highest log-likelihood; acc_norm divides each log-likelihood by the length in
characters of the choice string (the harness's `doc_to_choice`) first. Winogrande is the harness's
partial evaluation: the choices are contexts (the sentence up to the blank, filled with an option)
that share one continuation (the rest of the sentence). MMLU is the harness's `mmlu_continuation`
(cloze, zero-shot, with its subject description), on the test split of every subject.

The routing field is the paper's (Table 3): ARC/SciQ/BoolQ/MMLU -> question, HellaSwag -> ctx,
PIQA -> goal, Winogrande -> sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from splitlm.core.errors import ConfigError

DELIMITER = " "


@dataclass(frozen=True)
class Question:
    contexts: list[str]
    """One context per choice (the same string repeated, except for Winogrande)."""
    continuations: list[str]
    """One continuation per choice, delimiter included."""
    choices: list[str]
    """The harness's choice strings: acc_norm divides by their lengths in characters."""
    gold: int
    route_text: str
    """The field the question is routed by."""


@dataclass(frozen=True)
class Task:
    name: str
    folder: str
    """Folder under the provisioned `zeroshot/` data (a glob over subjects for MMLU)."""
    route_field: str
    build: Callable[[dict], Question]


def _same_context(context: str, choices: list[str], gold: int, route_text: str) -> Question:
    return Question([context] * len(choices), [DELIMITER + c for c in choices], choices, gold, route_text)


def arc(doc: dict) -> Question:
    context = f"Question: {doc['question']}\nAnswer:"
    labels = list(doc["choices"]["label"])
    return _same_context(context, list(doc["choices"]["text"]), labels.index(doc["answerKey"]), doc["question"])


def piqa(doc: dict) -> Question:
    return _same_context(f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"]),
                         doc["goal"])


def hellaswag_preprocess(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def hellaswag(doc: dict) -> Question:
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    context = hellaswag_preprocess(doc["activity_label"] + ": " + ctx)
    choices = [hellaswag_preprocess(e) for e in doc["endings"]]
    return _same_context(context, choices, int(doc["label"]), doc["ctx"])


def sciq(doc: dict) -> Question:
    context = f"{doc['support'].lstrip()}\nQuestion: {doc['question']}\nAnswer:"
    choices = [doc["distractor1"], doc["distractor2"], doc["distractor3"], doc["correct_answer"]]
    return _same_context(context, choices, 3, doc["question"])


def boolq(doc: dict) -> Question:
    context = f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"
    return _same_context(context, ["no", "yes"], int(bool(doc["answer"])), doc["question"])


def winogrande(doc: dict) -> Question:
    sentence = doc["sentence"]
    blank = sentence.index("_")
    contexts = [sentence[:blank] + doc["option1"], sentence[:blank] + doc["option2"]]
    target = DELIMITER + sentence[blank + 1:].strip()
    return Question(contexts, [target, target], contexts, int(doc["answer"]) - 1, sentence)


def mmlu(doc: dict) -> Question:
    subject = doc["subject"].replace("_", " ")
    context = (f"The following are questions (with answers) about {subject}.\n\n"
               f"Question: {doc['question'].strip()}\nAnswer:")
    return _same_context(context, list(doc["choices"]), int(doc["answer"]), doc["question"])


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("arc_easy", "ai2_arc/ARC-Easy/validation", "question", arc),
    Task("arc_challenge", "ai2_arc/ARC-Challenge/validation", "question", arc),
    Task("piqa", "piqa/plain_text/validation", "goal", piqa),
    Task("hellaswag", "hellaswag/none/validation", "ctx", hellaswag),
    Task("sciq", "sciq/none/validation", "question", sciq),
    Task("boolq", "boolq/none/validation", "question", boolq),
    Task("winogrande", "winogrande/winogrande_xl/validation", "sentence", winogrande),
    Task("mmlu", "hails/mmlu_no_train/*/test", "question", mmlu),
]}  # fmt: skip


def parse_tasks(text: str) -> list[Task]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ConfigError(f"--tasks {text}: unknown task {unknown[0] if unknown else '(none)'}; "
                          f"choose from {','.join(TASKS)}")
    return [TASKS[n] for n in dict.fromkeys(names)]
