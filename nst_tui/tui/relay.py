"""The job's relay on the driver's side: job events in, news for the dashboard out.

Called where the job's events arrive (the worker thread). A cell's rows and newest
canvas are gathered here and handed over at most as often as the dashboard's `Pace`
allows (fewer when drawing takes the UI thread more than its budget), and always when
a cell ends, so the UI thread redraws at a human rate whatever the GPU does and
however many cells log at once. The cells of a batch report one after another at the
same step: news goes once the round is complete (every live cell of the batch has a
new frame), so no cell waits a whole round to be shown. A single run is a job of one
cell: its round is complete at every frame.

Handing over puts the rows and counts into the job's `NewsBox` (merged there, once),
and the newest canvases to a `Poster`, whose thread shrinks them (a single run's to a
preview, a sweep's to tiles: the optimizer never waits on PIL), puts them in the box
too and posts a `NewsReady`; the App takes what waits in the box. A note, and the
job's end, wait for what is pending, so messages keep their order and the last rows
are in the box before the worker returns. Imported by the worker only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from textual.message import Message

from nst_tui.engine.events import Finished, Frame, Placed, Progress, Status
from nst_tui.job.events import (
    BatchStarted,
    CellEvent,
    IterationCount,
    JobEvent,
    JobFinished,
    JobStarted,
)
from nst_tui.job.plan import Job
from nst_tui.tui.images import shrink, wanted_px
from nst_tui.tui.messages import JobBegan, JobNote, NewsReady
from nst_tui.tui.news import CellNews, JobNews, NewsBox
from nst_tui.tui.pace import FASTEST, SWEEP_FASTEST, Pace
from nst_tui.tui.poster import Poster

Frames = dict[int, np.ndarray]  # each cell's newest canvas, not shrunk yet


def newest(older: Frames, newer: Frames) -> Frames:
    """Two hand-overs' canvases as one: each cell's newest."""
    return {**older, **newer}


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
        # Decided here only: the dashboard feeds it, and it slows the hand-overs when
        # drawing is dear (a grid of tiles at most 10 times a second).
        self.pace = pace or Pace(fastest=FASTEST if self.single else SWEEP_FASTEST)
        self.box = NewsBox(self.pace)  # what the dashboard takes when it gets to it
        self.count = IterationCount(job)
        self.cells: dict[int, CellNews] = {}  # since the last hand-over: this thread's only
        self.frames: Frames = {}
        self.live: set[int] = set()  # the running batch's cells that have not ended
        self.last_post = 0.0
        self.folder: Path | None = None
        self.batches = 0
        self.device: str | None = None
        self.engine_rate = 0.0  # a single run's it/s, as the engine reports it
        self.work: tuple[float | None, float | None] = (None, None)
        # Shrinks and posts off this thread; canvases handed over while it is busy wait
        # in its one slot, each cell's newest only.
        self.poster: Poster[Frames] = Poster(self._post, newest, f"relay-{job_id}")

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
        news = self.cells.setdefault(index, CellNews())
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
            news.rows.append((event.iteration, event.losses))
            news.iteration = event.iteration
            if self.single:
                self.engine_rate, self.work = event.it_per_s, (event.tflop_s, event.of_peak)
            if not event.logged and time.monotonic() - self.last_post >= self.pace.interval:
                self.flush()  # a slow step's count: no frame comes to carry it
        elif isinstance(event, Frame):
            # A cell framed twice since the last message: its batch-mates log less often.
            repeated = index in self.frames
            self.frames[index] = event.image
            round_done = self.live <= self.frames.keys()
            if (round_done or repeated) and time.monotonic() - self.last_post >= self.pace.interval:
                self.flush()
        elif isinstance(event, Finished):
            news.iteration = event.iterations_done
            news.status = event.status
            self.frames[index] = event.image
            self.live.discard(index)
            self.flush()
            if not self.live:  # the batch's last cell: its rows go before what comes next
                self.poster.drain()

    def flush(self) -> None:
        """Hand the news since the last flush over: rows and counts into the box, canvases
        to the poster's thread (which posts); returns at once."""
        cells = {i: c for i, c in self.cells.items() if c.rows or c.status}
        if not (cells or self.frames):
            return
        count = self.count
        # A single run shows the engine's own it/s (the loop alone); a sweep its count.
        rate = self.engine_rate if self.single else count.rate()
        tflop_s, of_peak = self.work
        self.box.put(JobNews(cells, count.completed, count.total, rate, tflop_s, of_peak))
        self.poster.send(self.frames)
        self.cells, self.frames = {}, {}
        self.last_post = time.monotonic()

    def _post(self, frames: Frames) -> None:
        """On the poster's thread: every cell's canvas shrunk into the box, and a message."""
        longest = wanted_px("preview" if self.single else "tile")  # real pixels want more
        previews = {
            index: CellNews(preview=shrink(Image.fromarray(image), longest))
            for index, image in frames.items()
        }
        self.box.put(JobNews(previews, gpu_memory=self._gpu_memory()))
        self.post(NewsReady(self.job_id, self.box))

    def _gpu_memory(self) -> int | None:
        if self.device is None or not self.device.startswith("cuda"):
            return None
        import torch  # only on a CUDA device, where the worker has loaded it long ago

        return int(torch.cuda.memory_reserved(torch.device(self.device)))
