"""A sweep's cells as a grid of live previews, one labelled tile per cell.

The grid follows the sweep's own table, as sheet.png does: a tile per cell,
titled with its column's label, and each row's label at its left (a sweep of
one field is a single unlabelled row). One cell is
selected: the arrow keys move in the grid, tab and shift+tab step through the
cells (and leave the grid at either end), a click picks a cell. Selecting posts
`SweepGrid.CellSelected`, so the app can show that cell's sparklines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.events import Click
from textual.message import Message
from textual.widgets import Static

from nst_tui.tui.job_state import CellView, JobState
from nst_tui.tui.plain import plain
from nst_tui.tui.widgets.pixels import PixelView

ROW_LABEL_MAX = 16  # columns; a longer row label wraps
MIN_ROW_HEIGHT = 6  # lines per row of tiles; more rows than fit scroll


class SweepTile(PixelView):
    """One cell: its canvas, its label on the border, its progress beneath."""

    WANTS = "tile"  # in real pixels, tiles are shrunk to what a tile shows

    def __init__(self, index: int) -> None:
        super().__init__("waiting", classes="sweep-tile")
        self.index = index
        self.cell: CellView | None = None

    def show(self, cell: CellView) -> None:
        self.cell = cell
        self._show_title()
        self.border_subtitle = plain(cell.caption())
        self.set_class(cell.status in ("cancelled", "failed"), "-stopped")
        self.set_class(cell.status == "finished", "-finished")
        if cell.preview is not self.image:
            self.image = cell.preview

    def on_resize(self) -> None:
        self._show_title()

    def _show_title(self) -> None:
        if self.cell is None:
            return
        room = self.size.width - 5  # corners, the rule before it and two spaces
        title = self.cell.title if len(self.cell.title) <= room else self.cell.short_title
        self.border_title = plain(title)  # plain text: a label is never markup

    def on_click(self, event: Click) -> None:
        grid = self.parent
        if isinstance(grid, SweepGrid):
            grid.select(self.index)
            grid.focus()


SELECT = "Select a cell; the loss pane shows its sparklines"
STEP = "The next / previous cell (then on, out of the grid)"


class SweepGrid(ScrollableContainer, can_focus=True):
    """The tiles of one `JobState`; `show()` switches to another sweep's state."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"move({dr}, {dc})", f"Cell {key}", show=False, tooltip=SELECT)
            for key, dr, dc in [("left", 0, -1), ("right", 0, 1), ("up", -1, 0), ("down", 1, 0)]
        ),
        Binding(
            "enter,v",
            "app.view",
            "View cell",
            show=False,
            tooltip=("The selected cell full screen: zoom, pan, its saved frames"),
        ),
        Binding("tab", "step(1)", "Next cell", show=False, tooltip=STEP),
        Binding("shift+tab", "step(-1)", "Previous cell", show=False, tooltip=STEP),
    ]

    @dataclass
    class CellSelected(Message):
        """The user (or a new sweep) selected this cell of the shown sweep."""

        state: JobState
        index: int

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state: JobState | None = None
        self.tiles: list[SweepTile] = []
        self.shape: tuple[object, ...] = ()

    def show(self, state: JobState) -> None:
        """Draw `state`'s cells, reusing the tiles when the table has the same shape."""
        shape = (state.job.rows, state.job.cols, state.row_labels)
        if shape != self.shape:
            self.shape = shape
            self.remove_children()
            self.tiles = [SweepTile(i) for i in range(len(state.cells))]
            widgets: list[Static | SweepTile] = []
            for r in range(state.job.rows):
                if state.row_labels:
                    widgets.append(Static(plain(state.row_labels[r]), classes="sweep-row"))
                widgets += self.tiles[r * state.job.cols : (r + 1) * state.job.cols]
            self.mount(*widgets)
            columns = " ".join(["1fr"] * state.job.cols)
            if state.row_labels:
                width = min(max(len(label) for label in state.row_labels), ROW_LABEL_MAX) + 1
                columns = f"{width} {columns}"
            self.set_styles(f"grid-size: {state.job.cols + bool(state.row_labels)};")
            self.set_styles(f"grid-columns: {columns};")
        self.state = state
        self._fit_rows()
        self.redraw(range(len(state.cells)))
        self.select(state.selected)

    def on_resize(self) -> None:
        self._fit_rows()

    def _fit_rows(self) -> None:
        """Rows share the height, down to MIN_ROW_HEIGHT each; past that the grid scrolls."""
        if self.state is None:
            return
        fits = self.size.height >= self.state.job.rows * MIN_ROW_HEIGHT
        self.set_styles(f"grid-rows: {'1fr' if fits else MIN_ROW_HEIGHT};")

    def redraw(self, indices: list[int] | range) -> None:
        if self.state is None:
            return
        for i in indices:
            self.tiles[i].show(self.state.cells[i])

    def select(self, index: int) -> None:
        if self.state is None or not self.tiles:
            return
        index = max(0, min(index, len(self.tiles) - 1))
        self.state.selected = index
        for tile in self.tiles:
            tile.set_class(tile.index == index, "-selected")
        self.post_message(self.CellSelected(self.state, index))

    def action_move(self, rows: int, cols: int) -> None:
        if self.state is None:
            return
        row, col = divmod(self.state.selected, self.state.job.cols)
        row = max(0, min(row + rows, self.state.job.rows - 1))
        col = max(0, min(col + cols, self.state.job.cols - 1))
        self.select(row * self.state.job.cols + col)
        self.scroll_to_widget(self.tiles[self.state.selected], animate=False)

    def action_step(self, delta: int) -> None:
        """The next (or previous) cell; past either end, focus moves on as tab would."""
        if self.state is None:
            return
        index = self.state.selected + delta
        if not 0 <= index < len(self.tiles):
            if delta > 0:
                self.screen.focus_next()
            else:
                self.screen.focus_previous()
            return
        self.select(index)
        self.scroll_to_widget(self.tiles[index], animate=False)
