"""This session's runs: what changed, final losses, wall time, status.

A sweep is one row (its losses are its cells', in the grid). Highlighting a
row shows its final image, or the sweep's grid; `r` reruns it and `l` loads its
config into the form. `m` marks a run (two at most) and `c` compares the marked
run with the highlighted one, or the two marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from nst_tui.text import visible
from nst_tui.tui.history_row import HistoryRow
from nst_tui.tui.widgets.loss_panel import TERMS, short

COLUMNS = ("#", "status", "preset", "changes", "total", "content", "style", "tv", "time")


def row_cells(row: HistoryRow) -> tuple[str, ...]:
    """The table's cells for `row`."""
    changes = " ".join(f"{k}={v}" for k, v in row.changes.items())
    if row.sweep is not None:
        changes = f"sweep {row.summary}" + (f" {changes}" if changes else "")
    changes = changes or "-"
    loss = [short(row.losses[t]) if t in row.losses else "-" for t in TERMS]
    wall = f"{row.wall_time:.1f}s" if row.wall_time is not None else "-"
    return (str(row.run_id), row.status, row.label, changes, *loss, wall)


class RunHistory(DataTable[Text]):
    """A row per run, newest last; the row key is the run id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rerun", "Rerun", tooltip="Run the highlighted row's config again"),
        Binding("l", "load", "Load config", tooltip="Put the highlighted row's config in the form"),
        Binding(
            "n",
            "continue",
            "Continue",
            tooltip="Continue it: its config with `init = run:FOLDER`, from its final image",
        ),
        Binding(
            "v",
            "app.view",
            "View",
            tooltip="The highlighted run's final image full screen (a sweep: its selected "
            "cell), with its saved frames a key away",
        ),
        Binding("m", "mark", "Mark", tooltip="Mark (or unmark) the highlighted run to compare"),
        Binding(
            "c",
            "compare",
            "Compare",
            tooltip="Compare the marked run with the highlighted one: both images, the fields "
            "that differ, both loss curves",
        ),
    ]

    @dataclass
    class Requested(Message):
        """The user asked to rerun (or load) the run with this id."""

        run_id: int
        action: str  # rerun | load

    class CompareRequested(Message):
        """The user asked to compare two runs (`compare_pair` says which, if any)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.marked: list[int] = []  # run ids, oldest mark first

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name in COLUMNS:
            self.add_column(name, key=name)

    def put(self, record: HistoryRow) -> None:
        key = str(record.run_id)
        # Text, not str: DataTable reads a str as markup, and a path may hold `[/x]`.
        cells = [Text(visible(cell)) for cell in row_cells(record)]  # and an escape is shown
        cells[0] = self._id_cell(record.run_id)
        if key in self.rows:
            for name, value in zip(COLUMNS, cells, strict=True):
                self.update_cell(key, name, value, update_width=True)
        else:
            self.add_row(*cells, key=key)
            self.move_cursor(row=self.get_row_index(key))

    def selected_id(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return int(key.value) if key.value is not None else None

    def _id_cell(self, run_id: int) -> Text:
        if run_id in self.marked:
            return Text(f"{run_id} ◆", style="bold")
        return Text(str(run_id))

    def compare_pair(self) -> tuple[int, int] | None:
        """The two marked runs, or the marked one and the highlighted one."""
        if len(self.marked) == 2:
            return self.marked[0], self.marked[1]
        selected = self.selected_id()
        if len(self.marked) == 1 and selected is not None and selected != self.marked[0]:
            return self.marked[0], selected
        return None

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id is None:
            return
        changed = [run_id]
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            if len(self.marked) == 2:  # a third mark replaces the oldest
                changed.append(self.marked.pop(0))
            self.marked.append(run_id)
        for key in changed:
            self.update_cell(str(key), "#", self._id_cell(key), update_width=True)

    def action_compare(self) -> None:
        self.post_message(self.CompareRequested())

    def _request(self, action: str) -> None:
        run_id = self.selected_id()
        if run_id is not None:
            self.post_message(self.Requested(run_id, action))

    def action_rerun(self) -> None:
        self._request("rerun")

    def action_load(self) -> None:
        self._request("load")

    def action_continue(self) -> None:
        self._request("continue")
