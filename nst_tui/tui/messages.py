"""Messages from the run worker to the widgets.

The worker thread posts these to the App; the high-rate ones (RunProgress,
SweepProgressed) merge into the next one still queued, so a fast GPU never
floods the UI and no logged point is lost on the way to the sparklines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message

LossRow = tuple[int, dict[str, float]]  # (iteration, losses)


@dataclass
class RunStatus(Message):
    """Something slow is happening before the loop (importing, loading weights)."""

    run_id: int
    text: str
    fraction: float | None = None


@dataclass
class RunStarted(Message):
    """The loop has started on this device with this backbone."""

    run_id: int
    device: str
    backbone: str


@dataclass
class RunProgress(Message):
    """Losses logged since the last message, the latest counters and canvas."""

    run_id: int
    rows: list[LossRow]
    iteration: int
    total: int
    it_per_s: float
    elapsed: float
    preview: Any = field(default=None, repr=False)  # a small PIL image, or None
    gpu_memory: int | None = None  # bytes reserved on the CUDA device
    tflop_s: float | None = None  # counted work per second (engine/flops.py)
    of_peak: float | None = None  # fraction of the device's datasheet peak

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older queued message whether the newer one may take
        # its place. Both get the union of the rows (and the latest canvas), so
        # whichever is dispatched carries every logged point.
        if not (isinstance(message, RunProgress) and message.run_id == self.run_id):
            return False
        older, newer = (self, message) if self.iteration <= message.iteration else (message, self)
        rows = older.rows + newer.rows
        preview = newer.preview if newer.preview is not None else older.preview
        for m in (self, message):
            m.rows, m.preview = rows, preview
        return True


# ---- sweeps ------------------------------------------------------------------------


@dataclass
class CellUpdate:
    """What one sweep cell logged since the last message (not a Message itself)."""

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
class SweepNote(Message):
    """A line about the sweep as a whole (loading weights, drawing the sheet)."""

    run_id: int
    text: str


@dataclass
class SweepBegan(Message):
    """The sweep folder exists and the first batch is about to start."""

    run_id: int
    folder: Path
    batches: int
    device: str
    backbone: str


@dataclass
class SweepProgressed(Message):
    """Every cell's news since the last message, and the count over the whole sweep."""

    run_id: int
    cells: dict[int, CellUpdate]
    completed: int  # cell-iterations done
    total: int
    rate: float  # cell-iterations per second

    def can_replace(self, message: Message) -> bool:
        # As RunProgress: both end up with the union, so no row or cell is lost.
        if not (isinstance(message, SweepProgressed) and message.run_id == self.run_id):
            return False
        older, newer = (self, message) if self.completed <= message.completed else (message, self)
        cells = dict(older.cells)
        for index, update in newer.cells.items():
            cells[index] = cells[index].merged(update) if index in cells else update
        for m in (self, message):
            m.cells = cells
            m.completed, m.total, m.rate = newer.completed, newer.total, newer.rate
        return True
