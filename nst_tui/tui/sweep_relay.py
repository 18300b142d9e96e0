"""The sweep worker's listener: sweep events in, dashboard messages out.

Runs in the worker thread. Every cell's loss rows are buffered and posted, with
each cell's newest canvas downscaled to a tile, at most as often as the dashboard's
`Pace` allows
(and always when a cell ends), so the UI redraws the grid at a human rate
however many cells log at once. The cells of a batch report one after another
at the same step: a message goes once the round is complete (every live cell
of the batch has a new frame), so no cell waits a whole round to be shown.
A `Poster`'s thread shrinks the tiles and posts, so the optimizer never waits on
PIL (25 cells' frames, several times a second, add up); a note, and the sweep's end,
wait for what is pending, so messages keep their order and the last rows are
posted before the worker returns. Imported by the worker only: it imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from textual.message import Message

from nst_tui.engine.events import Finished, Frame, Progress, Status
from nst_tui.engine.prepare import get_backbone, resolve_device
from nst_tui.sweeps import (
    BatchStarted,
    CellEvent,
    Sweep,
    SweepEvent,
    SweepFinished,
    SweepProgress,
    SweepStarted,
)
from nst_tui.tui.messages import CellUpdate, SweepBegan, SweepNote, SweepProgressed
from nst_tui.tui.pace import SWEEP_FASTEST, Pace
from nst_tui.tui.poster import Poster
from nst_tui.tui.sweep_state import TILE_PX
from nst_tui.tui.widgets.image_view import shrink


@dataclass(frozen=True)
class _Flush:
    """One flush, waiting for the poster's thread: the tiles are not made yet."""

    updates: dict[int, CellUpdate]  # rows, iteration and status; no preview
    frames: dict[int, np.ndarray]  # each cell's newest canvas since the last flush
    completed: int
    total: int
    rate: float

    def then(self, later: _Flush) -> _Flush:
        """Both flushes as one: every cell's rows in order, its newest canvas and count."""
        updates = dict(self.updates)
        for index, update in later.updates.items():
            updates[index] = updates[index].merged(update) if index in updates else update
        frames = {**self.frames, **later.frames}
        return _Flush(updates, frames, later.completed, later.total, later.rate)


class SweepRelay:
    def __init__(
        self,
        post: Callable[[Message], object],
        run_id: int,
        sweep: Sweep,
        pace: Pace | None = None,
    ) -> None:
        self.post = post
        self.run_id = run_id
        self.sweep = sweep
        # The dashboard's: at most 10 posts a second (a grid of tiles), fewer when dear.
        self.pace = pace or Pace(fastest=SWEEP_FASTEST)
        self.count = SweepProgress(sweep)
        self.updates: dict[int, CellUpdate] = {}
        self.frames: dict[int, np.ndarray] = {}
        self.live: set[int] = set()  # the running batch's cells that have not ended
        self.last_post = 0.0
        # Shrinks and posts off this thread; a flush merges into the one still waiting.
        self.poster: Poster[_Flush] = Poster(self._post, _Flush.then, f"sweep-relay-{run_id}")

    def __call__(self, event: SweepEvent) -> None:
        self.poster.raise_error()
        if isinstance(event, Status):
            self.poster.drain()  # rare (weights, the sheets): keeps the order
            self.post(SweepNote(self.run_id, event.message))
        elif isinstance(event, SweepStarted):
            self._began(event)
        elif isinstance(event, BatchStarted):
            self.live = set(event.cells)
        elif isinstance(event, CellEvent):
            self._cell(event)
        elif isinstance(event, SweepFinished):
            self.flush()
            self.poster.drain()  # the dashboard sees the last rows before the worker returns

    def _began(self, event: SweepStarted) -> None:
        self.count.start = time.perf_counter()  # the rate leaves out loading the weights
        cfg = self.sweep.cells[0].config
        # Both are cached by now (run_sweep checked every input), so this costs nothing.
        device = str(resolve_device(cfg.device))
        backbone = get_backbone(cfg.backbone).name
        self.poster.drain()  # nothing is pending before the first cell: this costs nothing
        self.post(SweepBegan(self.run_id, event.folder, len(event.batches), device, backbone))

    def _cell(self, wrapped: CellEvent) -> None:
        index, event = wrapped.cell, wrapped.event
        self.count.update(wrapped)
        update = self.updates.setdefault(index, CellUpdate())
        if isinstance(event, Status):
            if self.count.completed == 0:  # later ones would only flicker past
                self.poster.drain()
                self.post(SweepNote(self.run_id, f"cell {index}: {event.message}"))
        elif isinstance(event, Progress):
            update.rows.append((event.iteration, event.losses))
            update.iteration = event.iteration
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

    def flush(self) -> None:
        """Hand the news since the last flush to the poster's thread; returns at once."""
        if not self.frames and not any(u.rows or u.status for u in self.updates.values()):
            return
        count = self.count
        self.poster.send(
            _Flush(self.updates, self.frames, count.completed, count.total, count.rate())
        )
        self.updates, self.frames = {}, {}
        self.last_post = time.monotonic()

    def _post(self, flush: _Flush) -> None:
        """On the poster's thread: every cell's canvas to a tile, and one message."""
        updates = dict(flush.updates)
        for index, image in flush.frames.items():
            update = updates.setdefault(index, CellUpdate())
            update.preview = shrink(Image.fromarray(image), TILE_PX)
        news = {i: u for i, u in updates.items() if u.rows or u.preview is not None or u.status}
        if news:
            self.post(SweepProgressed(self.run_id, news, flush.completed, flush.total, flush.rate))
