"""The questions of a task, read from the provisioned Arrow folders (`splitlm assets`), in file order.

`datasets.load_from_disk` reads the folders when `datasets` is installed; otherwise the Arrow stream
files are read with pyarrow (the same rows: a `save_to_disk` folder is `data-*.arrow` streams plus
JSON metadata). `limit` keeps the first N questions of the task, as lm-evaluation-harness's
`--limit` does, and for MMLU the first N of every subject (subjects in name order).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from splitlm.core.errors import SchemaError
from splitlm.train.zeroshot.tasks import Task


def _rows(folder: Path) -> list[dict]:
    try:
        import datasets
    except ImportError:
        datasets = None
    try:
        if datasets is not None:
            return datasets.load_from_disk(str(folder)).to_list()
        tables = []
        for path in sorted(folder.glob("data-*.arrow")):
            with pa.memory_map(str(path)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        return pa.concat_tables(tables).to_pylist() if tables else []
    except (OSError, ValueError, pa.ArrowException) as err:
        raise SchemaError(f"{folder}: not a readable dataset folder ({err}); run `splitlm assets` again") from None


def folders(root: Path, task: Task) -> list[Path]:
    found = sorted(p for p in root.glob(task.folder) if p.is_dir())
    if not found:
        raise SchemaError(f"{root / task.folder}: no data for {task.name}; run `splitlm assets` to provision it")
    return found


def read_docs(root: Path, task: Task, limit: int = 0) -> list[dict]:
    """The task's documents in file order (`limit` > 0: the first `limit`, per subject for MMLU)."""
    docs = []
    for folder in folders(root, task):
        rows = _rows(folder)
        docs += rows[:limit] if limit else rows
    return docs
