"""Run a map of tasks in this process or as Ray tasks on a (local or remote) Ray cluster.

`Engine(config)` is a context manager: with `kind="ray"` it joins `address` (or starts a local Ray
when none is given and none is running) and shuts down only a Ray it started. `engine.map(fn,
items)` returns `fn(item)` for every item, in item order; Ray tasks get one CPU each and need the
run folder on a filesystem every node sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from splitlm.core.errors import ConfigError
from splitlm.core.ray_session import RaySession, import_ray

KINDS = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    kind: str = "local"
    """`local` (this process) or `ray` (tasks and actors on a Ray cluster)."""
    address: str | None = None
    """Ray cluster to join (`auto`, `HOST:6379`, `ray://HOST:10001`); None starts a local one."""
    workers: int = 0
    """Embedder actors under Ray; 0 = one per GPU, else one per CPU."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"--engine must be local or ray, got {self.kind!r}")
        if self.workers < 0:
            raise ConfigError(f"--ray-workers must be >= 0, got {self.workers}")
        if self.address and self.kind != "ray":
            raise ConfigError("--ray-address needs --engine ray")


class Engine:
    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self._session: RaySession | None = None

    @property
    def is_ray(self) -> bool:
        return self.config.kind == "ray"

    def __enter__(self) -> Self:
        if self.is_ray:
            self._session = RaySession(self.config.address).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._session is not None:
            self._session.__exit__(*exc)
            self._session = None

    def map(self, fn: Callable[..., Any], items: list[tuple], done: Callable[[int, Any], None] = lambda i, r: None
            ) -> list[Any]:
        """[fn(*item) for item in items]; `done(i, result)` as each finishes (any order under Ray)."""
        results: list[Any] = [None] * len(items)
        if not self.is_ray:
            for i, item in enumerate(items):
                results[i] = fn(*item)
                done(i, results[i])
            return results
        ray = import_ray()
        remote = ray.remote(fn).options(num_cpus=1, max_retries=2)
        pending = {remote.remote(*item): i for i, item in enumerate(items)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            results[i] = ray.get(ready[0])
            done(i, results[i])
        return results
