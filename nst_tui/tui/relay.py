"""The run worker's listener: engine events in, dashboard messages out.

Called in the worker thread. Loss rows are buffered and posted at most
`rate` times a second (and always at the last iteration and the end), with a
downscaled canvas, so the UI thread redraws at a human rate whatever the GPU
does. The relay's own thread shrinks the canvas and posts, so the optimizer never
waits on PIL; at the run's end everything pending is posted before the worker
returns. Imported by the worker only: it imports torch.
"""

from __future__ import annotations

import threading
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
from nst_tui.tui.widgets.image_view import shrink

PREVIEW_PX = 256  # the preview pane never needs more than this on its long edge
# The posting thread ends after this long without a flush: a run that raises never
# sends Finished, and its relay must not keep a thread. The next flush starts another.
IDLE_S = 1.0


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
        self, post: Callable[[Message], object], run_id: int, config: Config, rate: float = 20.0
    ) -> None:
        self.post = post
        self.run_id = run_id
        self.config = config
        self.interval = 1.0 / rate
        self.rows: list[LossRow] = []
        self.progress: Progress | None = None
        self.frame: np.ndarray | None = None
        self.last_post = 0.0
        self.device: str | None = None
        self._mail = threading.Condition()  # guards the four below
        self._mailbox: _Batch | None = None  # a single slot: a later flush merges into it
        self._poster: threading.Thread | None = None
        self._draining = False
        self._error: Exception | None = None  # the poster's, raised in the caller's thread

    def __call__(self, event: Event) -> None:
        self._raise_error()
        if isinstance(event, Status):
            self._drain()  # rare (before the loop, between scales): keeps messages in order
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
                now - self.last_post >= self.interval
                or event.iteration == self.config.total_iterations
            ):
                self.flush()
        elif isinstance(event, Finished):
            self.flush()
            self._drain()  # the dashboard sees the last rows before the run's end

    def _announce(self) -> None:
        # Both are cached by now (prepare ran), so this costs nothing.
        self.device = str(resolve_device(self.config.device))
        backbone = get_backbone(self.config.backbone).name
        self.post(RunStarted(self.run_id, self.device, backbone))

    def flush(self) -> None:
        if self.progress is None or (not self.rows and self.frame is None):
            return
        self._send(_Batch(self.rows, self.progress, self.frame))
        self.rows, self.frame = [], None
        self.last_post = time.monotonic()

    def _send(self, batch: _Batch) -> None:
        with self._mail:
            self._mailbox = batch if self._mailbox is None else self._mailbox.then(batch)
            if self._poster is None:
                self._poster = threading.Thread(
                    target=self._deliver, name=f"relay-{self.run_id}", daemon=True
                )
                self._poster.start()
            self._mail.notify()

    def _deliver(self) -> None:
        """The posting thread: each batch in turn, until drained or idle."""
        while (batch := self._take()) is not None:
            try:
                self._post(batch)
            except Exception as exc:  # raised in the caller's thread; later batches still go
                with self._mail:
                    self._error = self._error or exc

    def _take(self) -> _Batch | None:
        """The next batch; None (and the thread ends) once draining or idle with none."""
        with self._mail:
            self._mail.wait_for(lambda: self._mailbox is not None or self._draining, IDLE_S)
            batch, self._mailbox = self._mailbox, None
            if batch is None:
                self._poster = None
            return batch

    def _drain(self) -> None:
        """Post what is pending and end the posting thread."""
        with self._mail:
            poster, self._draining = self._poster, True
            self._mail.notify()
        if poster is not None:
            poster.join()
        self._draining = False
        self._raise_error()

    def _raise_error(self) -> None:
        with self._mail:
            error, self._error = self._error, None
        if error is not None:
            raise error

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
            )
        )

    def _gpu_memory(self) -> int | None:
        if not (self.device or "").startswith("cuda"):
            return None
        return int(torch.cuda.memory_reserved(torch.device(self.device)))
