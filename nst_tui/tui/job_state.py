"""A job as the dashboard holds it: its history row, every cell's losses, newest
preview and state, and its final image.

One `JobState` per job (a single run is a job of one cell), kept after it ends, so
that highlighting its row in the history brings its canvas, or a sweep's grid (and
each cell's sparklines), back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from nst_tui.job.events import JobResult
from nst_tui.job.plan import Job, cell_folder_name
from nst_tui.tui.history_row import HistoryRow
from nst_tui.tui.images import shrink, wanted_px
from nst_tui.tui.news import CellNews, LossRow


def table_summary(table: dict[str, list[Any]]) -> str:
    """`content_layers × 5`; `optimizer × 2 · content_layers × 5 = 10 cells`."""
    axes = " · ".join(f"{name} × {len(values)}" for name, values in table.items())
    if len(table) < 2:
        return axes
    return f"{axes} = {math.prod(len(v) for v in table.values())} cells"


def short_labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    """The labels less their shared leading words: `conv1_1`, `conv2_1` for
    `content conv1_1`, `content conv2_1` (unchanged when that would leave one empty)."""
    words = [label.split(" ") for label in labels]
    shared = 0
    while len(labels) > 1 and all(
        len(w) > shared + 1 and w[shared] == words[0][shared] for w in words
    ):
        shared += 1
    return tuple(" ".join(w[shared:]) for w in words)


@dataclass
class CellView:
    index: int
    label: str  # the whole label: "lbfgs, content conv2_1"
    title: str  # its column's label, as the tile shows it under a row label
    short_title: str  # the same less the words every column shares, for a narrow tile
    total: int  # the cell's iterations
    rows: list[LossRow] = field(default_factory=list)
    iteration: int = 0
    preview: Image.Image | None = None
    status: str = "waiting"  # waiting | running | finished | cancelled | failed

    def caption(self) -> str:
        if self.status in ("waiting", "running"):
            return f"{self.iteration}/{self.total}"
        if self.status == "finished":
            # Finished short of its iterations: the stop_change rule ended it there.
            return f"converged {self.iteration}/{self.total}" if self.converged else "finished"
        return f"{self.status} {self.iteration}/{self.total}"

    @property
    def converged(self) -> bool:
        return self.status == "finished" and 0 < self.iteration < self.total


class JobState:
    def __init__(self, record: HistoryRow, job: Job, summary: str = "") -> None:
        self.record = record
        self.job = job
        self.summary = summary  # a sweep's table in a few words
        short = short_labels(job.col_labels)
        self.cells = [
            CellView(
                c.index, c.label, job.col_labels[c.col], short[c.col], c.config.total_iterations
            )
            for c in job.cells
        ]
        self.selected = 0
        self.batches = 0  # how many batches the job planned, once it has said
        self.final: Image.Image | None = None  # a single run's last canvas, once ended
        self.folder: Path | None = None  # the job's folder, once it exists (JobBegan)

    @property
    def run_id(self) -> int:
        return self.record.run_id

    @property
    def is_sweep(self) -> bool:
        return self.job.is_sweep

    @property
    def row_labels(self) -> tuple[str, ...]:
        """One per row; none when the table has a single field (its one row has no label)."""
        return self.job.row_labels if any(self.job.row_labels) else ()

    # ---- how the dashboard words it: a run's canvas or a sweep's cells -----------------
    @property
    def what(self) -> str:
        return f"{'Sweep' if self.is_sweep else 'Run'} {self.run_id}"

    @property
    def unit(self) -> str:
        """What the status line counts: a sweep's iterations summed over its cells."""
        return "cell-it" if self.is_sweep else "it"

    @property
    def viewable(self) -> bool:
        """Whether it has a picture to bring back: a sweep's grid, or a run's final canvas."""
        return self.is_sweep or self.final is not None

    def loss_title(self, index: int) -> str:
        """The loss pane's title while it shows cell `index`."""
        if not self.is_sweep:
            return "Loss"
        return f"Loss · cell {index}: {self.cells[index].label}"

    def title(self) -> str:
        """The canvas pane's title: whose picture it shows, and how far that job got."""
        status = self.record.status
        shown = "" if status == "running" else f" {status}"
        cell = self.cells[0]
        if self.is_sweep:
            title = f"Sweep · run {self.run_id}{shown} · {self.summary}"
            if self.batches:
                title += f" · {self.batches} batch{'es' * (self.batches != 1)}"
            return title
        if status != "running":
            if cell.converged:
                return f"Canvas · run {self.run_id} converged · {cell.iteration}/{cell.total} it"
            return f"Canvas · run {self.run_id}{shown} · {cell.iteration} it"
        progress = f" · {cell.iteration}/{cell.total}" if cell.iteration else ""
        return f"Canvas · run {self.run_id}{progress}"

    def figures(self, result: JobResult) -> tuple[int, float]:
        """Iterations done and their rate, as the status line counts them (`unit`)."""
        if self.is_sweep:
            return result.cell_iterations, result.cell_it_per_s
        return result.finished.iterations_done, result.finished.it_per_s

    def failures(self, result: JobResult) -> tuple[str, str] | None:
        """A notification's title and text when cells failed: which and why."""
        failed = [c for c in result.cells if c.finished.status == "failed"]
        if not failed:
            return None
        if not self.is_sweep:
            return f"{self.what} failed", failed[0].finished.reason
        reasons = "\n".join(f"{c.cell.label}: {c.finished.reason}" for c in failed)
        return f"{self.what} {result.status}", reasons

    def cell_folder(self, index: int) -> Path | None:
        """Where cell `index` is recorded: the job's folder for a single run, a folder in it
        for a sweep's cell; None before the job has a folder."""
        folder = self.folder or self.record.folder
        if folder is None or not self.is_sweep:
            return folder
        return folder / cell_folder_name(self.job, self.job.cells[index])

    def apply(self, news: dict[int, CellNews]) -> list[int]:
        """Fold the cells' news in; returns the cells that changed."""
        for index, update in news.items():
            cell = self.cells[index]
            cell.rows.extend(update.rows)
            if not self.is_sweep:  # a run's rows stay with its history row, for comparing
                self.record.rows.extend(update.rows)
            cell.iteration = max(cell.iteration, update.iteration)
            if update.preview is not None:
                cell.preview = update.preview
            if update.status:
                cell.status = update.status
            elif cell.status == "waiting":  # an ended cell's last preview may come later
                cell.status = "running"
        return sorted(news)

    def finish(self, result: JobResult) -> None:
        """Every cell's final state and image, and the history row, from the result."""
        for outcome in result.cells:
            cell = self.cells[outcome.cell.index]
            fin = outcome.finished
            cell.status, cell.iteration = fin.status, fin.iterations_done
            cell.preview = shrink(Image.fromarray(fin.image), wanted_px("tile"))
        record = self.record
        record.status, record.folder, record.wall_time = result.status, result.folder, 0.0
        self.folder = result.folder
        failed = [c for c in result.cells if c.finished.status == "failed"]
        if self.is_sweep:
            record.wall_time = result.wall_time
            record.reason = f"{len(failed)} of {len(result.cells)} cells failed" if failed else ""
        else:
            fin = result.finished
            record.reason, record.losses, record.wall_time = fin.reason, fin.losses, fin.wall_time
            self.final = shrink(Image.fromarray(fin.image), wanted_px("preview"))

    def stop_waiting(self, status: str) -> None:
        """The job ended without a result (it never got going): say so on every cell."""
        for cell in self.cells:
            if cell.status in ("waiting", "running"):
                cell.status = status
