"""Messages from the job worker to the widgets: one started, one progress, notes.

The worker thread posts these to the App; JobProgressed merges into the next one
still queued, so a fast GPU never floods the UI and no logged point is lost on the
way to the sparklines. A single run is a job of one cell (cell 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

LossRow = tuple[int, dict[str, float]]  # (iteration, losses)


@dataclass
class CellUpdate:
    """What one cell logged since the last message (not a Message itself)."""

    rows: list[LossRow] = field(default_factory=list)
    iteration: int = 0
    preview: Any = field(default=None, repr=False)  # a small PIL image, or None
    status: str = ""  # finished | cancelled | failed once the cell has ended

    def merged(self, newer: CellUpdate) -> CellUpdate:
        return CellUpdate(
            self.rows + newer.rows,
            max(self.iteration, newer.iteration),
            newer.preview if newer.preview is not None else self.preview,
            newer.status or self.status,
        )


@dataclass
class JobNote(Message):
    """Something slow is happening (importing, loading weights, drawing the sheet)."""

    job_id: int
    text: str


@dataclass
class JobBegan(Message):
    """The job's folder exists and its first cell has been placed on a device."""

    job_id: int
    folder: Path
    batches: int
    device: str
    backbone: str


@dataclass
class JobProgressed(Message):
    """Every cell's news since the last message, and the count over the whole job."""

    job_id: int
    cells: dict[int, CellUpdate]
    completed: int  # (cell-)iterations done
    total: int
    rate: float  # (cell-)iterations per second
    # A single run's counted work per second (engine/flops.py) and its fraction of the
    # device's datasheet peak; bytes reserved on its CUDA device.
    tflop_s: float | None = None
    of_peak: float | None = None
    gpu_memory: int | None = None

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older queued message whether the newer one may take its
        # place. Both get the union (every cell's rows in order, its newest preview),
        # so whichever is dispatched carries every logged point.
        if not (isinstance(message, JobProgressed) and message.job_id == self.job_id):
            return False
        older, newer = (self, message) if self.completed <= message.completed else (message, self)
        cells = dict(older.cells)
        for index, update in newer.cells.items():
            cells[index] = cells[index].merged(update) if index in cells else update
        for m in (self, message):
            m.cells = cells
            m.completed, m.total, m.rate = newer.completed, newer.total, newer.rate
            m.tflop_s, m.of_peak, m.gpu_memory = newer.tflop_s, newer.of_peak, newer.gpu_memory
        return True
