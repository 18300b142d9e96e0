"""The run worker's listener: engine events in, dashboard messages out.

Runs in the worker thread. Loss rows are buffered and posted at most
`rate` times a second (and always at the last iteration and the end), with a
downscaled canvas, so the UI thread redraws at a human rate whatever the GPU
does. Imported by the worker only: it imports torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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

    def __call__(self, event: Event) -> None:
        if isinstance(event, Status):
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

    def _announce(self) -> None:
        # Both are cached by now (prepare ran), so this costs nothing.
        self.device = str(resolve_device(self.config.device))
        backbone = get_backbone(self.config.backbone).name
        self.post(RunStarted(self.run_id, self.device, backbone))

    def flush(self) -> None:
        if self.progress is None or (not self.rows and self.frame is None):
            return
        p = self.progress
        preview = None
        if self.frame is not None:
            preview = shrink(Image.fromarray(self.frame), PREVIEW_PX)
        self.post(
            RunProgress(
                self.run_id,
                self.rows,
                p.iteration,
                p.total,
                p.it_per_s,
                p.elapsed,
                preview,
                self._gpu_memory(),
            )
        )
        self.rows, self.frame = [], None
        self.last_post = time.monotonic()

    def _gpu_memory(self) -> int | None:
        if not (self.device or "").startswith("cuda"):
            return None
        return int(torch.cuda.memory_reserved(torch.device(self.device)))
