"""What a job tells its listeners: its start, each batch, each cell's engine events, its end.

Engine events (Status, Placed, Progress, Frame, Finished) reach listeners wrapped in
a `CellEvent` naming their cell, whoever ran them (this process or a cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst_tui.engine.events import Event, Finished, Progress, Status
from nst_tui.job.plan import Batch, Cell, Job

NOT_RUN = "not run: "  # how the reason of a cell that never started begins


def not_run(status: str, why: str) -> Finished:
    """The end of a cell that never started (`status` cancelled or failed): no step, no
    canvas, no final image."""
    return Finished(status, NOT_RUN + why, 0, 0.0, 0.0, {}, np.zeros((1, 1, 3), np.uint8), False)


@dataclass(frozen=True)
class JobStarted:
    """The job's folder exists and its first batch is about to start."""

    job: Job
    folder: Path
    batches: tuple[Batch, ...]


@dataclass(frozen=True)
class BatchStarted:
    batch: int  # index into JobStarted.batches
    cells: tuple[int, ...]
    batched: bool


@dataclass(frozen=True)
class CellEvent:
    """An engine event of cell `cell`."""

    cell: int
    event: Event


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    folder: Path
    finished: Finished


@dataclass(frozen=True)
class JobResult:
    folder: Path  # the run folder of a single run; the sweep folder of a sweep
    status: str  # finished | cancelled | failed (some cell failed)
    cells: tuple[CellResult, ...]
    wall_time: float  # seconds from the first batch to the last
    cell_iterations: int
    cell_it_per_s: float  # every cell's iterations, over wall_time
    device: str
    backbone: str

    @property
    def finished(self) -> Finished:
        """The first cell's end: a single run's."""
        return self.cells[0].finished


@dataclass(frozen=True)
class JobFinished:
    result: JobResult


JobEvent = Status | JobStarted | BatchStarted | CellEvent | JobFinished
# Who hears a job's events: the driver's listeners (recorder, progress, dashboard relay),
# and the router (nst_tui.job.run) that the executors and the lifecycle send them to.
Listener = Callable[[JobEvent], None]


class IterationCount:
    """Folds cell events into one count, for a single progress bar over the job."""

    def __init__(self, job: Job) -> None:
        self.total = job.total_iterations
        self.cell_totals = [c.config.total_iterations for c in job.cells]
        self.done = [0] * len(job.cells)
        self.start = time.perf_counter()

    def update(self, event: JobEvent) -> bool:
        """True when the count changed. A cell the stop_change rule ended early takes the
        iterations it did not need off the total, so the count still ends at the total."""
        if isinstance(event, CellEvent):
            ev = event.event
            if isinstance(ev, Finished) and ev.converged:
                self.total -= self.cell_totals[event.cell] - ev.iterations_done
                self.cell_totals[event.cell] = ev.iterations_done
            if isinstance(ev, Progress | Finished):
                done = ev.iteration if isinstance(ev, Progress) else ev.iterations_done
                if done != self.done[event.cell]:
                    self.done[event.cell] = done
                    return True
        return False

    @property
    def completed(self) -> int:
        return sum(self.done)

    def rate(self) -> float:
        """Cell-iterations per second since the job started."""
        return self.completed / max(time.perf_counter() - self.start, 1e-9)
