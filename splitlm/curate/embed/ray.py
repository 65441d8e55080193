"""Scale-out of the embedding stage with Ray: one MiniLM embedder per actor, one task per part.

The driver decodes each part's windows to text and hands it to a free actor, keeping at most one
part in flight per actor, so memory stays bounded; finished parts come back to the driver, which
saves them exactly as the local engine does (so resume works across engines). Actors need no
shared filesystem: they receive texts and return vectors. On a GPU cluster each actor takes one GPU.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from splitlm.core.errors import ConfigError
from splitlm.curate.embed.model import EmbedConfig, Embedder


def _actor_class():
    import ray

    class EmbedActor:
        def __init__(self, config: EmbedConfig, threads: int):
            import torch

            torch.set_num_threads(max(threads, 1))
            self.embedder = Embedder(config)

        def spec(self) -> dict:
            return self.embedder.spec()

        def encode(self, texts: list[str]) -> np.ndarray:
            return self.embedder.encode(texts)

    return ray.remote(EmbedActor)


def embed_parts(todo: list[tuple[int, int, int]], texts: Callable[[int, int], list[str]],
                save: Callable[[int, np.ndarray], None], config: EmbedConfig, address: str | None,
                workers: int) -> dict:
    """Embed parts (index, lo, hi) on Ray actors; returns the embedder spec."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--engine ray needs Ray: pip install 'splitlm[ray]'") from err
    started = not ray.is_initialized()
    if started:
        env = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, runtime_env=env,
                 num_cpus=None if address else os.cpu_count())
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        n = workers or gpus or int(resources.get("CPU", 1))
        per_actor = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
        actors = [_actor_class().options(**per_actor).remote(config, 1) for _ in range(n)]
        spec = ray.get(actors[0].spec.remote())
        free, inflight, pending = list(actors), {}, iter(todo)
        while True:
            while free and (item := next(pending, None)) is not None:
                index, lo, hi = item
                actor = free.pop()
                inflight[actor.encode.remote(texts(lo, hi))] = (index, actor)
            if not inflight:
                return spec
            (done,), _ = ray.wait(list(inflight), num_returns=1)
            index, actor = inflight.pop(done)
            save(index, ray.get(done))
            free.append(actor)
    finally:
        if started:
            ray.shutdown()
