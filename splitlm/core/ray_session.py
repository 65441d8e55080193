"""Joining a Ray cluster, or starting a local one, for as long as a `with` block runs.

`RaySession(address)` joins `address` (`auto`, `HOST:6379`, `ray://HOST:10001`); with none it
starts a local Ray on this machine's cores, unless one is already running in this process. It
shuts down only a Ray it started. Workers get the offline environment the driver has (no model
hub at run time). Every node must see the folders the tasks read and write (a shared filesystem).
"""

from __future__ import annotations

import os
from typing import Self

from splitlm.core.errors import ConfigError

RAY_ENV = {"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}}


def import_ray():
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--engine ray needs Ray: pip install 'splitlm[ray]'") from err
    return ray


class RaySession:
    def __init__(self, address: str | None = None, log_to_driver: bool = False):
        self.address = address
        self.log_to_driver = log_to_driver  # True: workers' prints reach this process's stdout
        self._started = False

    def __enter__(self) -> Self:
        ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=self.log_to_driver,
                     runtime_env=RAY_ENV, num_cpus=None if self.address else os.cpu_count())
            self._started = True
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import_ray().shutdown()
            self._started = False
