"""Where a job's batches run: the seam between planning a job and computing it.

An executor takes the job's batches and hands back events tagged with their cell
(`CellEvent`), each cell ending with a `Finished`; it writes no file (the driver,
nst_tui.job.run, records what the events say). A cell's inputs are its Config and
the image paths it names, so an executor may run cells anywhere: `LocalExecutor`
runs them in this process, one batch after another, on the configured device
(nst_tui.job.local); `RayExecutor` runs each batch as a task on a Ray cluster's
worker, one GPU each (nst_tui.job.ray_executor, the optional extra `nst-tui[ray]`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from nst_tui.engine.events import StatusFn
from nst_tui.errors import NSTError
from nst_tui.job.events import Listener
from nst_tui.job.plan import Batch, Job


class Executor(Protocol):
    name: str
    # Batches that can run at once, known once `check` has run: the plan splits batched
    # cells into at least this many batches, so every worker (a cluster's GPUs) has one.
    workers: int

    def check(self, job: Job, status: StatusFn) -> None:
        """Raise NSTError for an input no cell can run with (before any folder exists)."""

    def run(
        self, job: Job, batches: Sequence[Batch], emit: Listener, cancel: threading.Event
    ) -> None:
        """Run every batch; every cell emits its events and ends with a Finished, unless
        this raises (a signal, a bug): the driver then records the cells left."""


def executor_named(name: str, address: str = "") -> Executor:
    """The executor a job asks for by name (Config.executor; `address`: Config.ray_address);
    each imports its engine only when chosen."""
    if name == "local":
        from nst_tui.job.local import LocalExecutor  # torch: not at the UI's start-up

        return LocalExecutor()
    if name == "ray":
        try:
            from nst_tui.job.ray_executor import RayExecutor
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] != "ray":
                raise
            raise NSTError(
                "executor ray needs Ray, which is not installed here: "
                "install it with pip install 'nst-tui[ray]'"
            ) from None
        return RayExecutor(address)
    raise ValueError(f"unknown executor {name!r}")
