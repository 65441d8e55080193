"""Scale-out of the embedding stage with Ray Data: `map_batches` over an actor pool, one embedder each.

The driver plans the parts still missing (index, first and last window, the scratch file to
write) and hands them to Ray Data as a dataset of rows; `map_batches` runs them one part per call
on a pool of `EmbedParts` actors. Each actor loads the run's embedder once (`load_embedder`:
MiniLM, or the static table from the asset cache, which every node then needs; one GPU per actor
when the cluster has GPUs, else one CPU and one torch thread), reads its part's windows from the run folder
through the memory-mapped token parts, decodes and embeds them, and saves the part atomically to
the scratch folder exactly as the local engine does (so resume works across engines). The rows
that come back carry only the part index, the actor's pid and the embedder spec. The run folder
must be on a filesystem every Ray node sees. The pool starts whole (every actor loaded) before the
first part is handed out, so parts spread over all actors; each actor holds one part at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from splitlm.core.atomic import atomic_path
from splitlm.core.errors import ConfigError
from splitlm.core.ray_session import import_ray
from splitlm.curate.embed.config import EmbedConfig
from splitlm.curate.embed.load import load_embedder
from splitlm.schemas.tokens import TokenArray
from splitlm.tokenizer import load_tokenizer

START_SECONDS = 600
"""How long the actor pool may take to start (Ray places the actors, each loads its embedder)."""


def save_part(path: Path, vectors: np.ndarray) -> None:
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors)


class EmbedParts:
    """A Ray Data callable class: embeds whole parts given as rows (index, lo, hi, path)."""

    def __init__(self, config: EmbedConfig, windows: str, tokenizer: str, threads: int):
        import torch

        torch.set_num_threads(max(threads, 1))
        self.embedder = load_embedder(config)
        self.windows = TokenArray(windows)
        self.tok = load_tokenizer(tokenizer)
        self.spec = json.dumps(self.embedder.spec(), sort_keys=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for lo, hi, path in zip(batch["lo"], batch["hi"], batch["path"]):
            texts = self.tok.decode_batch(self.windows.tokens[int(lo):int(hi)])
            save_part(Path(str(path)), self.embedder.encode(texts))
        n = len(batch["index"])
        return {"index": batch["index"], "pid": np.full(n, os.getpid()), "spec": np.array([self.spec] * n)}


def embed_parts(todo: list[tuple[int, int, int]], paths: list[Path], windows: Path, tokenizer: str,
                config: EmbedConfig, workers: int, done: Callable[[int], None]) -> tuple[dict | None, list[int]]:
    """Embed parts (index, lo, hi) into `paths[index]` on a Ray Data actor pool; (spec, worker pids)."""
    if not todo:
        return None, []
    ray = import_ray()
    import ray.data  # noqa: F811  (the submodule, loaded on demand)

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    n = min(workers or gpus or int(resources.get("CPU", 1)), len(todo))
    rows = [{"index": i, "lo": lo, "hi": hi, "path": str(paths[i])} for i, lo, hi in todo]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    ctx.wait_for_min_actors_s = START_SECONDS  # every actor loads its embedder before parts go out: they spread
    per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    pool = ray.data.ActorPoolStrategy(size=n, max_tasks_in_flight_per_actor=1)  # a part each: all actors work
    results = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        EmbedParts, batch_size=1, compute=pool, fn_constructor_args=(config, str(windows), tokenizer, 1),
        **per_actor)
    spec, pids = None, []
    try:
        for row in results.iter_rows():
            spec = spec or json.loads(row["spec"])
            pids.append(int(row["pid"]))
            done(int(row["index"]))
    except ray.exceptions.GetTimeoutError as err:
        raise ConfigError(f"--engine ray: the cluster did not start {n} embedder actors ({per_actor} each) in "
                          f"{START_SECONDS} s; lower --ray-workers or free resources") from err
    return spec, pids
