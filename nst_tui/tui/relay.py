"""The job worker's listener: job events in, dashboard messages out.

Called where the job's events arrive (the worker thread). Every cell's rows and
newest canvas are buffered and posted at most as often as the dashboard's `Pace`
allows (fewer when drawing takes the UI thread more than its budget), and always
when a cell ends, so the UI thread redraws at a human rate whatever the GPU does
and however many cells log at once. The cells of a batch report one after another
at the same step: a message goes once the round is complete (every live cell of
the batch has a new frame), so no cell waits a whole round to be shown. A single
run is a job of one cell: its round is complete at every frame.

A `Poster`'s thread shrinks the canvases (a single run's to a preview, a sweep's
to tiles) and posts, so the optimizer never waits on PIL; a note, and the job's
end, wait for what is pending, so messages keep their order and the last rows are
posted before the worker returns. Imported by the worker only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from textual.message import Message

from nst_tui.engine.events import Finished, Frame, Placed, Progress, Status
from nst_tui.job.events import (
    BatchStarted,
    CellEvent,
    JobEvent,
    JobFinished,
    JobProgress,
    JobStarted,
)
from nst_tui.job.plan import Job
from nst_tui.tui.job_state import PREVIEW_PX, TILE_PX
from nst_tui.tui.messages import CellUpdate, JobBegan, JobNote, JobProgressed
from nst_tui.tui.pace import SWEEP_FASTEST, Pace
from nst_tui.tui.poster import Poster
from nst_tui.tui.widgets.image_view import shrink


@dataclass(frozen=True)
class _Flush:
    """One flush, waiting for the poster's thread: the previews are not made yet."""

    updates: dict[int, CellUpdate]  # rows, iteration and status; no preview
    frames: dict[int, np.ndarray]  # each cell's newest canvas since the last flush
    completed: int
    total: int
    rate: float
    work: tuple[float | None, float | None]  # a single run's TFLOP/s and fraction of peak

    def then(self, later: _Flush) -> _Flush:
        """Both flushes as one: every cell's rows in order, its newest canvas and count."""
        updates = dict(self.updates)
        for index, update in later.updates.items():
            updates[index] = updates[index].merged(update) if index in updates else update
        frames = {**self.frames, **later.frames}
        return _Flush(updates, frames, later.completed, later.total, later.rate, later.work)


class JobRelay:
    def __init__(
        self,
        post: Callable[[Message], object],
        job_id: int,
        job: Job,
        pace: Pace | None = None,
    ) -> None:
        self.post = post
        self.job_id = job_id
        self.job = job
        self.single = not job.is_sweep
        # The dashboard's: it slows the posts when drawing is dear (a grid of tiles at
        # most 10 times a second).
        self.pace = pace or (Pace() if self.single else Pace(fastest=SWEEP_FASTEST))
        self.preview_px = PREVIEW_PX if self.single else TILE_PX
        self.count = JobProgress(job)
        self.updates: dict[int, CellUpdate] = {}
        self.frames: dict[int, np.ndarray] = {}
        self.live: set[int] = set()  # the running batch's cells that have not ended
        self.last_post = 0.0
        self.folder: Path | None = None
        self.batches = 0
        self.device: str | None = None
        self.engine_rate = 0.0  # a single run's it/s, as the engine reports it
        self.work: tuple[float | None, float | None] = (None, None)
        # Shrinks and posts off this thread; a flush merges into the one still waiting.
        self.poster: Poster[_Flush] = Poster(self._post, _Flush.then, f"relay-{job_id}")

    def __call__(self, event: JobEvent) -> None:
        self.poster.raise_error()
        if isinstance(event, Status):
            self.note(event.message)
        elif isinstance(event, JobStarted):
            self.folder, self.batches = event.folder, len(event.batches)
        elif isinstance(event, BatchStarted):
            self.live = set(event.cells)
        elif isinstance(event, CellEvent):
            self._cell(event)
        elif isinstance(event, JobFinished):
            self.flush()
            self.poster.drain()  # the dashboard sees the last rows before the worker returns

    def note(self, text: str) -> None:
        self.poster.drain()  # rare (weights, scales, the sheets): keeps the order
        self.post(JobNote(self.job_id, text))

    def _cell(self, wrapped: CellEvent) -> None:
        index, event = wrapped.cell, wrapped.event
        self.count.update(wrapped)
        update = self.updates.setdefault(index, CellUpdate())
        if isinstance(event, Placed):
            if self.device is None:
                self.count.start = time.perf_counter()  # the rate leaves out the loading
                self.device = event.device
                self.poster.drain()
                folder = self.folder or Path()
                self.post(JobBegan(self.job_id, folder, self.batches, event.device, event.backbone))
        elif isinstance(event, Status):
            if self.single or self.count.completed == 0:  # later ones would only flicker past
                self.note(event.message if self.single else f"cell {index}: {event.message}")
        elif isinstance(event, Progress):
            update.rows.append((event.iteration, event.losses))
            update.iteration = event.iteration
            if self.single:
                self.engine_rate, self.work = event.it_per_s, (event.tflop_s, event.of_peak)
        elif isinstance(event, Frame):
            # A cell framed twice since the last message: its batch-mates log less often.
            repeated = index in self.frames
            self.frames[index] = event.image
            round_done = self.live <= self.frames.keys()
            if (round_done or repeated) and time.monotonic() - self.last_post >= self.pace.interval:
                self.flush()
        elif isinstance(event, Finished):
            update.iteration = event.iterations_done
            update.status = event.status
            self.frames[index] = event.image
            self.live.discard(index)
            self.flush()
            if not self.live:  # the batch's last cell: its rows go before what comes next
                self.poster.drain()

    def flush(self) -> None:
        """Hand the news since the last flush to the poster's thread; returns at once."""
        if not self.frames and not any(u.rows or u.status for u in self.updates.values()):
            return
        count = self.count
        # A single run shows the engine's own it/s (the loop alone); a sweep its count.
        rate = self.engine_rate if self.single else count.rate()
        flush = _Flush(self.updates, self.frames, count.completed, count.total, rate, self.work)
        self.poster.send(flush)
        self.updates, self.frames = {}, {}
        self.last_post = time.monotonic()

    def _post(self, flush: _Flush) -> None:
        """On the poster's thread: every cell's canvas shrunk, and one message."""
        updates = dict(flush.updates)
        for index, image in flush.frames.items():
            update = updates.setdefault(index, CellUpdate())
            update.preview = shrink(Image.fromarray(image), self.preview_px)
        news = {i: u for i, u in updates.items() if u.rows or u.preview is not None or u.status}
        if news:
            tflop_s, of_peak = flush.work
            self.post(
                JobProgressed(
                    self.job_id,
                    news,
                    flush.completed,
                    flush.total,
                    flush.rate,
                    tflop_s,
                    of_peak,
                    self._gpu_memory(),
                )
            )

    def _gpu_memory(self) -> int | None:
        if not (self.device or "").startswith("cuda"):
            return None
        import torch  # only on a CUDA device, where the worker has loaded it long ago

        return int(torch.cuda.memory_reserved(torch.device(self.device)))
