"""The run worker's listener: engine events in, dashboard messages out.

Called in the worker thread. Loss rows are buffered and posted with a downscaled
canvas at most as often as the dashboard's `Pace` allows (20 a second, fewer when
drawing takes the UI thread more than its budget), and always at the last
iteration and the end, so the UI thread redraws at a human rate whatever the GPU
does. A `Poster`'s thread shrinks the canvas and posts, so the optimizer never
waits on PIL; at the run's end everything pending is posted before the worker
returns. Imported by the worker only: it imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from textual.message import Message

from nst_tui.config import Config
from nst_tui.engine.events import Event, Finished, Frame, Progress, Status
from nst_tui.engine.prepare import get_backbone, resolve_device
from nst_tui.tui.messages import LossRow, RunProgress, RunStarted, RunStatus
from nst_tui.tui.pace import Pace
from nst_tui.tui.poster import Poster
from nst_tui.tui.widgets.image_view import shrink

PREVIEW_PX = 256  # the preview pane never needs more than this on its long edge


@dataclass(frozen=True)
class _Batch:
    """One flush, waiting for the posting thread."""

    rows: list[LossRow]
    progress: Progress
    frame: np.ndarray | None

    def then(self, later: _Batch) -> _Batch:
        """Both flushes as one: every row in order, the newest progress and canvas."""
        frame = later.frame if later.frame is not None else self.frame
        return _Batch(self.rows + later.rows, later.progress, frame)


class Relay:
    def __init__(
        self,
        post: Callable[[Message], object],
        run_id: int,
        config: Config,
        pace: Pace | None = None,
    ) -> None:
        self.post = post
        self.run_id = run_id
        self.config = config
        self.pace = pace or Pace()  # the dashboard's: it slows the posts when drawing is dear
        self.rows: list[LossRow] = []
        self.progress: Progress | None = None
        self.frame: np.ndarray | None = None
        self.last_post = 0.0
        self.device: str | None = None
        # Shrinks and posts off this thread; a flush merges into the one still waiting.
        self.poster: Poster[_Batch] = Poster(self._post, _Batch.then, f"relay-{run_id}")

    def __call__(self, event: Event) -> None:
        self.poster.raise_error()
        if isinstance(event, Status):
            self.poster.drain()  # rare (before the loop, between scales): keeps the order
            self.post(RunStatus(self.run_id, event.message, event.fraction))
        elif isinstance(event, Progress):
            if self.device is None:
                self._announce()
            self.rows.append((event.iteration, event.losses))
            self.progress = event
        elif isinstance(event, Frame):
            self.frame = event.image
            now = time.monotonic()
            if (
                now - self.last_post >= self.pace.interval
                or event.iteration == self.config.total_iterations
            ):
                self.flush()
        elif isinstance(event, Finished):
            self.flush()
            self.poster.drain()  # the dashboard sees the last rows before the run's end

    def _announce(self) -> None:
        # Both are cached by now (prepare ran), so this costs nothing.
        self.device = str(resolve_device(self.config.device))
        backbone = get_backbone(self.config.backbone).name
        self.post(RunStarted(self.run_id, self.device, backbone))

    def flush(self) -> None:
        if self.progress is None or (not self.rows and self.frame is None):
            return
        self.poster.send(_Batch(self.rows, self.progress, self.frame))
        self.rows, self.frame = [], None
        self.last_post = time.monotonic()

    def _post(self, batch: _Batch) -> None:
        p = batch.progress
        preview = None
        if batch.frame is not None:
            preview = shrink(Image.fromarray(batch.frame), PREVIEW_PX)
        self.post(
            RunProgress(
                self.run_id,
                batch.rows,
                p.iteration,
                p.total,
                p.it_per_s,
                p.elapsed,
                preview,
                self._gpu_memory(),
                p.tflop_s,
                p.of_peak,
            )
        )

    def _gpu_memory(self) -> int | None:
        if not (self.device or "").startswith("cuda"):
            return None
        return int(torch.cuda.memory_reserved(torch.device(self.device)))
