"""lm-evaluation-harness task configs for `train zeroshot`: the harness's own YAMLs, reading our Arrow folders.

Each task starts from lm-eval's built-in YAML (`lm_eval/tasks/...`, `include:` and `!function`
resolved by the harness's own loader), so the templates, `doc_to_text/choice/target` and
`process_docs` (HellaSwag) are the harness's. Overridden only:
- where the data comes from: `custom_dataset` reads the provisioned folder (`splitlm assets`) with
  `datasets.load_from_disk(keep_in_memory=True)`, so nothing is fetched and nothing is written next
  to the provisioned files; `dataset_path` names that folder;
- BoolQ: the folder is google/boolq (`answer: bool`), the harness's YAML reads super_glue's `label`,
  so `process_docs` adds `label = int(answer)`;
- `num_fewshot: 0` (what `simple_evaluate` sets when a YAML names none);
- the splits: only the evaluated one exists (ARC's YAML would evaluate its test split, absent here);
- `metric_list`: acc and acc_norm for every task (BoolQ's and Winogrande's YAMLs list acc only).
MMLU is `mmlu_continuation` (cloze, zero-shot), one harness task per subject (`mmlu_<subject>`).

The field each question routes by is the paper's (Table 3): ARC/SciQ/BoolQ/MMLU -> question,
HellaSwag -> ctx, PIQA -> goal, Winogrande -> sentence.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from splitlm.core.errors import ConfigError, SchemaError

MMLU_PREFIX = "mmlu_"
METRICS = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
           {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]


@dataclass(frozen=True)
class Task:
    name: str
    yaml: str
    """The harness's YAML, relative to `lm_eval/tasks` (for MMLU a pattern over subjects)."""
    folder: str
    """Folder under the provisioned `zeroshot/` data (a glob over subjects for MMLU)."""
    split: str
    route_field: str


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("arc_easy", "arc/arc_easy.yaml", "ai2_arc/ARC-Easy/validation", "validation", "question"),
    Task("arc_challenge", "arc/arc_challenge.yaml", "ai2_arc/ARC-Challenge/validation", "validation", "question"),
    Task("piqa", "piqa/piqa.yaml", "piqa/plain_text/validation", "validation", "goal"),
    Task("hellaswag", "hellaswag/hellaswag.yaml", "hellaswag/none/validation", "validation", "ctx"),
    Task("sciq", "sciq/sciq.yaml", "sciq/none/validation", "validation", "question"),
    Task("boolq", "super_glue/boolq/default.yaml", "boolq/none/validation", "validation", "question"),
    Task("winogrande", "winogrande/default.yaml", "winogrande/winogrande_xl/validation", "validation", "sentence"),
    Task("mmlu", "mmlu/continuation/mmlu_{subject}.yaml", "hails/mmlu_no_train/*/test", "test", "question"),
]}  # fmt: skip


def parse_tasks(text: str) -> list[Task]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ConfigError(f"--tasks {text}: unknown task {unknown[0] if unknown else '(none)'}; "
                          f"choose from {','.join(TASKS)}")
    return [TASKS[n] for n in dict.fromkeys(names)]


def task_of(harness_name: str) -> Task:
    """Our task behind a harness task name (`mmlu_anatomy_continuation` -> mmlu)."""
    if harness_name in TASKS:
        return TASKS[harness_name]
    if harness_name.startswith(MMLU_PREFIX):
        return TASKS["mmlu"]
    raise ConfigError(f"harness task {harness_name}: not one of {','.join(TASKS)}")


def offline() -> None:
    """No Hugging Face fetch, ever: the data are local folders and the model is ours."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"


def folders(root: Path, task: Task) -> list[Path]:
    found = sorted(p for p in root.glob(task.folder) if p.is_dir())
    if not found:
        raise SchemaError(f"{root / task.folder}: no data for {task.name}; run `splitlm assets` to provision it")
    return found


def load_local(folder: str, split: str, **_metadata):
    """The harness's `custom_dataset`: {split: the Arrow folder's rows}, in memory (no cache files)."""
    import datasets

    try:
        return datasets.DatasetDict({split: datasets.load_from_disk(folder, keep_in_memory=True)})
    except (OSError, ValueError, FileNotFoundError) as err:
        raise SchemaError(f"{folder}: not a readable dataset folder ({err}); run `splitlm assets` again") from None


def boolq_label(dataset):
    """google/boolq's `answer: bool` as super_glue's `label` (0 no, 1 yes), which the harness's YAML reads."""
    return dataset.map(lambda doc: {"label": int(bool(doc["answer"]))}, keep_in_memory=True)


class Once:
    """A task's `process_docs` (the harness's own function), run once per dataset.

    lm-eval calls `process_docs` on every access to the documents (several times per pass, and
    `train zeroshot` runs K + 2 passes): HellaSwag's maps 10,042 documents each time.
    """

    def __init__(self, fn):
        self.fn = fn
        self.done: dict[str, object] = {}

    def __call__(self, dataset):
        key = dataset._fingerprint
        if key not in self.done:
            self.done[key] = self.fn(dataset)
        return self.done[key]


def harness_yaml(relative: str) -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / relative


def configs(root: Path, task: Task) -> list[dict]:
    """The harness config(s) of `task` on the local data (one per subject for MMLU)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    out = []
    for folder in folders(root, task):
        yaml_path = harness_yaml(task.yaml.format(subject=folder.parent.name))
        if not yaml_path.is_file():
            raise ConfigError(f"{yaml_path}: lm-eval has no such task YAML (lm-eval 0.4.13 expected)")
        cfg = load_yaml(yaml_path)
        for key in ("tag", "group"):
            cfg.pop(key, None)
        cfg.update(dataset_path=str(folder), dataset_name=None, dataset_kwargs=None,
                   custom_dataset=functools.partial(load_local, str(folder), task.split),
                   metric_list=[dict(m) for m in METRICS], training_split=None, fewshot_split=None,
                   validation_split=None, test_split=None, num_fewshot=0)
        cfg["test_split" if task.split == "test" else "validation_split"] = task.split  # the only split we have
        if task.name == "boolq":
            cfg["process_docs"] = boolq_label
        if callable(cfg.get("process_docs")):
            cfg["process_docs"] = Once(cfg["process_docs"])
        out.append(cfg)
    return out


def build(root: Path, tasks: list[Task]) -> list:
    """The harness `ConfigurableTask`s of `tasks`, data loaded (offline)."""
    import logging

    import datasets

    offline()
    datasets.disable_progress_bars()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # a warning per task about `custom_dataset` kwargs
    from lm_eval.api.task import ConfigurableTask

    return [ConfigurableTask(config=cfg) for task in tasks for cfg in configs(root, task)]
