"""The App's sweep half: the loaded [sweep] table, the sweep worker and its messages.

A mixin of `NSTApp` (it uses the app's panes, `active`, `records` and
`_after_run`), kept apart so that app.py reads as the single-run dashboard.

A preset with a `[sweep]` table loads its base values into the form and keeps
the table; ctrl+r then runs every cell over the form's values. A swept field
stays swept: the form's value for it is replaced in each cell (the form marks
those fields). ctrl+g turns the sweep off (ctrl+r runs the form once) and on.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from textual import work

from nst_tui.config import Config
from nst_tui.errors import ConfigError
from nst_tui.tui.messages import SweepBegan, SweepNote, SweepProgressed
from nst_tui.tui.pace import SWEEP_FASTEST, Pace
from nst_tui.tui.sweep_state import SweepState, table_summary
from nst_tui.tui.widgets.loss_panel import LossPanel
from nst_tui.tui.widgets.run_history import RunRecord
from nst_tui.tui.widgets.sweep_grid import SweepGrid

if TYPE_CHECKING:
    from nst_tui.sweeps import Sweep, SweepResult
    from nst_tui.tui.app import ActiveRun, NSTApp

SweepTable = dict[str, list[Any]]


class SweepRuns:
    """Sweep state and handlers; NSTApp sets `sweep_table`, `sweep_on` and `sweeps`."""

    sweep_table: SweepTable | None  # the loaded preset's [sweep] table
    sweep_on: bool  # ctrl+r runs the table (else the form once)
    sweeps: dict[int, SweepState]  # every sweep of this session, by run id

    # ---- the loaded table --------------------------------------------------------
    def set_sweep(self: NSTApp, table: SweepTable | None) -> None:
        """Keep `table` (None drops it) and show it above the form."""
        self.sweep_table = table or None
        self.sweep_on = self.sweep_table is not None
        self._show_sweep_note()
        self.refresh_bindings()

    def _show_sweep_note(self: NSTApp) -> None:
        table = self.sweep_table
        if table is None:
            self.form.show_sweep(None)
        elif self.sweep_on:
            how = "ctrl+r runs every cell; the marked fields vary per cell. ctrl+g: off"
            self.form.show_sweep(f"Sweep: {table_summary(table)}\n{how}", table)
        else:
            how = "ctrl+r runs the form once. ctrl+g: on"
            self.form.show_sweep(f"Sweep off: {table_summary(table)}\n{how}", ())

    def action_toggle_sweep(self: NSTApp) -> None:
        """Turn the loaded sweep off (ctrl+r runs the form once) or back on."""
        if self.sweep_table is None:
            return
        self.sweep_on = not self.sweep_on
        self._show_sweep_note()
        self.notify("sweep on: ctrl+r runs every cell" if self.sweep_on else "sweep off")

    def action_edit_sweep(self: NSTApp) -> None:
        """Type the sweep table (or a first one): checked over the form's values."""
        from nst_tui.tui.screens.sweep_editor import SweepEditor

        config = self.form.check()
        if config is None:
            self.notify("Fix the marked fields first.", title="Cannot sweep", severity="error")
            return

        def check(table: SweepTable) -> str:
            from nst_tui.sweeps import expand

            expand(config, table)  # raises ConfigError naming the bad field or value
            return table_summary(table)

        def done(table: SweepTable | None) -> None:
            if table is None:
                return
            self.set_sweep(table)
            self.notify(f"sweep: {table_summary(table)}" if table else "sweep removed")

        self.push_screen(SweepEditor(self.sweep_table, check), done)

    # ---- starting ----------------------------------------------------------------
    def start_sweep(
        self: NSTApp, config: Config, table: SweepTable, label: str, base: Config
    ) -> None:
        """Run every cell of `table` over `config` (swept fields replaced per cell)."""
        if self.active is not None:
            self.notify("A run is in progress; escape cancels it.", severity="warning")
            return
        from nst_tui.sweeps import expand

        try:
            sweep = expand(config, table, label)
        except ConfigError as exc:
            self.notify(str(exc), title="Sweep blocked", severity="error", timeout=12)
            return
        from nst_tui.tui.app import ActiveRun

        run_id = max(self.records, default=0) + 1
        summary = table_summary(table)
        changes = {k: v for k, v in config.differences(base).items() if k not in table}
        record = RunRecord(run_id, label, config, base, changes, sweep=table, summary=summary)
        self.records[run_id] = record
        self.history.put(record)
        state = SweepState(run_id, sweep, summary)
        self.sweeps[run_id] = state
        self.active = ActiveRun(
            record, threading.Event(), time.monotonic(), sweep=state, pace=Pace(SWEEP_FASTEST)
        )
        self.show_sweep_view(state)
        self.grid.focus()  # the arrow keys pick a cell at once
        self.status.show(
            state="loading",
            detail="starting",
            iteration=0,
            total=sum(c.config.total_iterations for c in sweep.cells),
            it_per_s=0.0,
            tflop_s=None,
            of_peak=None,
            unit="cell-it",
            gpu_memory=None,
            folder=None,
        )
        self.refresh_bindings()
        self.sweep_job(run_id, sweep, label, self.active)

    @work(thread=True, exclusive=True, exit_on_error=False, group="run")
    def sweep_job(self: NSTApp, run_id: int, sweep: Sweep, label: str, active: ActiveRun) -> Any:
        """Every cell of one sweep, in this thread; progress leaves it as messages."""
        try:
            self.post_message(SweepNote(run_id, "importing torch"))
            from nst_tui.sweeps import run_sweep
            from nst_tui.tui.sweep_relay import SweepRelay

            relay = SweepRelay(self.post_message, run_id, sweep, active.pace)
            return run_sweep(
                sweep, out_root=self.outputs, label=label, listeners=[relay], cancel=active.cancel
            )
        finally:
            active.ended.set()  # what quitting on a signal waits for

    # ---- the two views of the canvas pane -------------------------------------------
    @property
    def grid(self: NSTApp) -> SweepGrid:
        return self.query_one(SweepGrid)

    def show_sweep_view(self: NSTApp, state: SweepState) -> None:
        """The grid of `state`'s cells in place of the canvas; the loss pane follows the
        selected cell."""
        self.query_one("#canvas-pane").add_class("-sweep")
        self.grid.show(state)  # selects its cell, which fills the loss pane
        self._title_sweep(state, self.records[state.run_id].status)

    def show_canvas_view(self: NSTApp) -> None:
        """Back to the single canvas (a sweep cell's sparklines do not stay)."""
        pane = self.query_one("#canvas-pane")
        if not pane.has_class("-sweep"):
            return
        if self.focused is self.grid:
            self.screen.set_focus(None)
        pane.remove_class("-sweep")
        self.query_one(LossPanel).reset()
        self.query_one(LossPanel).border_title = "Loss"

    def _title_sweep(self: NSTApp, state: SweepState, status: str) -> None:
        shown = "" if status == "running" else f" {status}"
        title = f"Sweep · run {state.run_id}{shown} · {state.summary}"
        if state.batches:
            title += f" · {state.batches} batch{'es' * (state.batches != 1)}"
        self.query_one("#canvas-pane").border_title = title

    def _is_active_sweep(self: NSTApp, run_id: int) -> bool:
        active = self.active
        return active is not None and active.sweep is not None and active.record.run_id == run_id

    # ---- messages from the sweep -------------------------------------------------------
    def on_sweep_note(self: NSTApp, message: SweepNote) -> None:
        if not self._is_active_sweep(message.run_id):
            return
        state = self.status.state.state
        if state == "running":
            self.status.show(detail=message.text)
        elif state != "cancelling":
            self.status.show(state="loading", detail=message.text)

    def on_sweep_began(self: NSTApp, message: SweepBegan) -> None:
        if not self._is_active_sweep(message.run_id):
            return
        assert self.active is not None and self.active.sweep is not None
        self.active.sweep.batches = message.batches
        self._title_sweep(self.active.sweep, "running")
        cancelling = self.active.cancel.is_set()
        self.status.show(
            state="cancelling" if cancelling else "running",
            detail="",
            device=message.device,
            backbone=message.backbone,
        )

    def on_sweep_progressed(self: NSTApp, message: SweepProgressed) -> None:
        if not self._is_active_sweep(message.run_id):
            return
        assert self.active is not None
        self.active.pace.drawn()
        state = self.sweeps[message.run_id]
        changed = state.apply(message.cells)
        if self.grid.state is state:
            self.grid.redraw(changed)
            update = message.cells.get(state.selected)
            if update is not None and update.rows:
                self.query_one(LossPanel).add(update.rows)
        changes: dict[str, object] = {}
        if self.status.state.state == "loading":
            changes = {"state": "running", "detail": ""}
        self.status.show(
            iteration=message.completed, total=message.total, it_per_s=message.rate, **changes
        )

    def on_sweep_grid_cell_selected(self: NSTApp, message: SweepGrid.CellSelected) -> None:
        cell = message.state.cells[message.index]
        losses = self.query_one(LossPanel)
        losses.replace(cell.rows)
        losses.border_title = f"Loss · cell {cell.index}: {cell.label}"

    # ---- the end -------------------------------------------------------------------------
    def sweep_ended(self: NSTApp, result: SweepResult) -> None:
        """The worker returned: every cell finished, was cancelled, or failed."""
        assert self.active is not None and self.active.sweep is not None
        record, state = self.active.record, self.active.sweep
        failed = [c for c in result.cells if c.finished.status == "failed"]
        record.status, record.folder = result.status, result.folder
        record.wall_time = result.wall_time
        record.reason = f"{len(failed)} of {len(result.cells)} cells failed" if failed else ""
        state.finish(result)
        if self.grid.state is state:
            self.grid.redraw(range(len(state.cells)))
        self._title_sweep(state, result.status)
        self.history.put(record)
        self.status.show(
            state=result.status,
            detail=record.reason,
            iteration=result.cell_iterations,
            it_per_s=result.cell_it_per_s,
            device=result.device,
            backbone=result.backbone,
            folder=result.folder,
        )
        title = f"Sweep {record.run_id} {result.status}"
        if failed:
            reasons = "\n".join(f"{c.cell.label}: {c.finished.reason}" for c in failed)
            self.notify(reasons, title=title, severity="error", timeout=12)
        elif result.status == "cancelled":
            self.notify(f"saved to {result.folder}", title=title)
        self._after_run()

    def sweep_stopped(self: NSTApp, status: str) -> None:
        """The sweep ended without a result (bad input, crash): mark its cells."""
        assert self.active is not None and self.active.sweep is not None
        state = self.active.sweep
        state.stop_waiting(status)
        if self.grid.state is state:
            self.grid.redraw(range(len(state.cells)))
        self._title_sweep(state, status)
