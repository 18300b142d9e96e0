"""The canvas pane: one job's picture, its canvas beside the input thumbnails for a run,
or its grid of cells for a sweep.

It alone decides which of the two a job shows, so the App passes it jobs and news
without asking what kind of job they are.
"""

from __future__ import annotations

from PIL import Image
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label

from nst_tui.tui.job_state import JobState
from nst_tui.tui.news import CellNews
from nst_tui.tui.plain import plain
from nst_tui.tui.widgets.image_view import ImageView
from nst_tui.tui.widgets.pixels import PixelView
from nst_tui.tui.widgets.sweep_grid import SweepGrid


class CanvasPane(Horizontal):
    def compose(self) -> ComposeResult:
        # Real pixels where the terminal shows them, else ImageView's half blocks.
        yield PixelView("press ctrl+r to run", id="canvas", wants="preview")
        with Vertical(id="thumbs"):
            yield Label("content", classes="thumb-label")
            yield PixelView("…", id="thumb-content")
            yield Label("style", classes="thumb-label")
            yield PixelView("…", id="thumb-style")
        yield SweepGrid(id="sweep-grid")

    @property
    def canvas(self) -> ImageView:
        return self.query_one("#canvas", ImageView)

    @property
    def grid(self) -> SweepGrid:
        return self.query_one(SweepGrid)

    def thumbnail(self, which: str, image: Image.Image | None, note: str) -> None:
        view = self.query_one(f"#thumb-{which}", ImageView)
        view.placeholder = note or "…"
        view.image = image

    def show(self, job: JobState, *, focus: bool = False) -> None:
        """`job`'s picture: its grid of cells (focused with `focus`, so the arrow keys pick
        a cell at once), or its canvas."""
        if job.is_sweep:
            self.add_class("-sweep")
            self.grid.show(job)  # selects its cell, which fills the loss pane
            if focus:
                self.grid.focus()
        else:
            if self.has_class("-sweep") and self.screen.focused is self.grid:
                self.screen.set_focus(None)
            self.remove_class("-sweep")
            self.canvas.image = job.final
        self.retitle(job)

    def update(self, job: JobState, news: dict[int, CellNews]) -> None:
        """Draw the cells `news` changed (already applied to `job`)."""
        if job.is_sweep:
            if self.grid.state is job:
                self.grid.redraw(sorted(news))
        else:
            update = news.get(0)
            if update is not None and update.preview is not None:
                self.canvas.image = update.preview
        self.retitle(job)

    def ended(self, job: JobState) -> None:
        """Every cell's last state, and a run's final canvas."""
        if job.is_sweep:
            if self.grid.state is job:
                self.grid.redraw(range(len(job.cells)))
        elif job.final is not None:
            self.canvas.image = job.final
        self.retitle(job)

    def retitle(self, job: JobState) -> None:
        self.border_title = plain(job.title())  # a summary quotes values
