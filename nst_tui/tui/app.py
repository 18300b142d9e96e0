"""The dashboard App: layout, keys, the run worker and what its messages change.

Torch is never imported here at start-up: the first screen paints at once,
a background worker imports the engine, and each run imports it again (free
by then) inside its thread worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.command import CommandPalette
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState, get_current_worker

from nst_tui import presets
from nst_tui.config import OUTPUTS, Config
from nst_tui.errors import ConfigError, NSTError
from nst_tui.job.events import JobResult
from nst_tui.job.plan import expand
from nst_tui.job.stop import CANCEL, HURRY, NOW, SAYS
from nst_tui.text import visible
from nst_tui.tui import graphics
from nst_tui.tui.images import shrink
from nst_tui.tui.job_state import JobState, table_summary
from nst_tui.tui.keys import APP_BINDINGS
from nst_tui.tui.messages import JobBegan, JobNote, NewsReady
from nst_tui.tui.paste import pasted, use_paste_parser
from nst_tui.tui.plain import plain
from nst_tui.tui.screens.compare_screen import CompareScreen
from nst_tui.tui.screens.file_picker import FilePicker
from nst_tui.tui.screens.help_screen import HelpScreen
from nst_tui.tui.screens.preset_picker import PresetPicker
from nst_tui.tui.screens.save_preset import SavePreset
from nst_tui.tui.screens.sweep_editor import SweepEditor
from nst_tui.tui.screens.viewer import ViewerScreen, source_for
from nst_tui.tui.session import ActiveJob, Refused, Session, SweepTable
from nst_tui.tui.widgets.canvas_pane import CanvasPane
from nst_tui.tui.widgets.footer import Footer
from nst_tui.tui.widgets.image_view import colour_hint
from nst_tui.tui.widgets.loss_panel import LossPanel
from nst_tui.tui.widgets.params_form import ParamsForm, PathInput
from nst_tui.tui.widgets.run_history import RunHistory
from nst_tui.tui.widgets.status_line import StatusLine
from nst_tui.tui.widgets.sweep_grid import SweepGrid

THUMB_PX = 128
QUIT_ASK_S = 5.0  # a second `q` within this many seconds quits a running job
# Actions that make no sense behind a modal (priority keys reach the App even there).
CRASHED = 1  # the exit status after an error ended the dashboard (Textual's own code)
RECORD_TIMEOUT_S = 600.0  # a cancelled run stops within an iteration, then writes its GIF
MAIN_SCREEN_ACTIONS = {
    *("run", "cancel_run", "pick_preset", "save_preset", "reset", "focus_layers", "toggle_sweep"),
    # A dialog opens from the main screen only: stacked dialogs (help over the palette, a
    # sweep editor over that) ended in a second command palette and DuplicateIds.
    *("edit_sweep", "help", "command_palette", "focus_runs", "toggle_layer_losses"),
    *("view", "frames"),
}


class NSTApp(App[int]):
    """Run, watch and rerun style-transfer experiments from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "nst-tui"
    # Nothing focused at start, so the plain keys (digits, q, ?) work at once;
    # tab enters the form. Each modal names what it focuses.
    AUTO_FOCUS = None
    # No ClassVar (RUF012 waived): App declares it an instance variable, and mypy forbids
    # overriding one with a class variable.
    HORIZONTAL_BREAKPOINTS = [  # noqa: RUF012
        (0, "-narrow"),
        (110, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = list(APP_BINDINGS)  # nst_tui/tui/keys.py

    def __init__(
        self,
        config: Config | None = None,
        *,
        preset_name: str = "study",  # Config()'s values are the study's
        outputs: Path = OUTPUTS,
        start: bool = False,
        warm_up: bool = True,
        sweep: SweepTable | None = None,
    ) -> None:
        super().__init__()
        self.initial = config or Config()
        self.session = Session(preset_name, self.initial, sweep)
        self.outputs = Path(outputs)
        self.start_at_once = start
        self.warm_up_engine = warm_up
        self.quit_after_run = False
        self.exit_code = 0  # 128 + the signal's number when a signal ends the app
        # After SIGTERM/SIGHUP, seconds to wait (once a run's record is written) before the
        # process leaves even if Textual is stuck on a terminal that is gone; None: never.
        self.force_exit_after: float | None = None
        self._signals: list[int] = []
        self._quit_asked_at = -QUIT_ASK_S  # when `q` last asked to quit a running job
        self.thumbnails_of: tuple[str, str] | None = None
        self._palette: CommandPalette | None = None  # the last command palette opened
        self.crash: BaseException | None = None  # what ended the app, if an error did

    # ---- layout ------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # The panes, kept by name: the App routes to them.
        self.form = ParamsForm(self.initial, id="form")
        self.pane = CanvasPane(id="canvas-pane")
        self.losses = LossPanel(id="losses")
        self.history = RunHistory(id="history")
        self.status = StatusLine(id="status")
        with Horizontal(id="main"):
            yield self.form
            with Vertical(id="right"):
                yield self.pane
                yield self.losses
                yield self.history
        yield self.status
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.form.border_title = "Parameters"
        self.pane.border_title = "Canvas"
        self.losses.border_title = "Loss"
        self.history.border_title = "Runs"
        self._set_subtitle()
        self._show_sweep_note()
        self.show_images(self.initial.content_image, self.initial.style_image, delay=0.0)
        if self.warm_up_engine:
            self.status.show(state="loading", detail="importing torch")
            self.call_after_refresh(self.warm_up)
        else:
            self.status.show(state="idle")
        if self.start_at_once:
            self.call_after_refresh(self.action_run)
        self._catch_signals()
        if (note := graphics.current().notice) and not self.is_headless:  # once, at start
            self.notify(note, title="Graphics", severity="warning", timeout=15)
        hint = colour_hint(self.console.color_system, os.environ)
        if hint is not None and not self.is_headless:  # once, at start
            self.notify(hint, title="Colours", severity="warning", timeout=15)

    def on_unmount(self) -> None:
        # However the app ends (even by an error), a run still going is stopped, so
        # its record is written while Python waits for the worker thread to end.
        if self.active is not None:
            self.active.cancel.set()
        self._release_signals()

    # ---- signals: SIGTERM, and SIGHUP when an SSH session drops ---------------------
    def _catch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # asyncio takes signals on the main thread only
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is None:
                continue
            try:
                loop.add_signal_handler(sig, self.handle_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._signals.append(sig)

    def _release_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        self._signals = []

    def handle_signal(self, signum: int) -> None:
        """Stop like quit: a running job is cancelled and recorded, then the app exits."""
        self.exit_code = 128 + signum
        self._leave_for_sure()
        name = signal.Signals(signum).name
        self.quit_after_run = True
        if self.stop_job(name) in (None, NOW):
            self.exit(self.exit_code)
        elif not self.active or not self.active.hurry.is_set():
            self.notify(f"{name}: cancelling the run and saving it, then quitting…")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        # Plain text unless asked: messages quote paths and values as typed, and a
        # `[/x]` in a file name must not be read as markup (MarkupError ends the app);
        # an escape sequence in one is shown, not sent to the terminal.
        if not markup:
            message, title = visible(message, lines=True), visible(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _handle_exception(self, error: Exception) -> None:
        # An error nothing caught: Textual prints its traceback and ends the app with None;
        # kept here so that `run_dashboard` says so and exits non-zero.
        if self.crash is None:
            self.crash = error
        if self.active is not None:  # stopped and recorded before Python waits for it
            self.active.cancel.set()
        super()._handle_exception(error)

    def get_driver_class(self) -> type[Driver]:
        return use_paste_parser(super().get_driver_class())  # a paste is text, not keys

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Paste) and not event.is_forwarded:
            event.text = pasted(event.text)  # inserted as text: an escape is shown, not sent
        await super().on_event(event)

    def _leave_for_sure(self) -> None:
        # When an SSH session drops, Textual can block for good writing to the dead
        # terminal; a process left behind would hold its memory (a GPU's, too).
        if self.force_exit_after is None:
            return
        ended = self.active.ended if self.active is not None else None
        grace, code = self.force_exit_after, self.exit_code

        def watch() -> None:
            if ended is not None:
                ended.wait(RECORD_TIMEOUT_S)  # the cancelled run writes its record first
            time.sleep(grace)
            os._exit(code)

        threading.Thread(target=watch, name="nst-tui-exit", daemon=True).start()

    def _set_subtitle(self) -> None:
        self.form.border_subtitle = plain(f"preset: {self.session.preset_name}")

    # ---- background work -----------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="warmup")
    def warm_up(self) -> None:
        """Import torch and the engine off the UI thread (seconds on a cold disk); then
        ask what `device = auto` is here and, on a GPU, what it has free (the memory
        plan's line in the form knows a CPU's figures without torch, a GPU's from this)."""
        import nst_tui.job.local  # noqa: F401  (the engine a job runs on: torch and all)
        from nst_tui.engine.device_memory import note_auto
        from nst_tui.engine.prepare import resolve_device

        note_auto(resolve_device("auto"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="thumbs")
    def load_thumbnails(self, content: str, style: str, delay: float = 0.4) -> None:
        """Read both images for the thumbnails; waits first, as the path may still be typed."""
        time.sleep(delay)
        if get_current_worker().is_cancelled:
            return
        from nst_tui.engine.images import load_image

        for which, spec in (("content", content), ("style", style)):
            notes: list[str] = []
            try:
                image: Image.Image | None = shrink(load_image(spec, which, notes.append), THUMB_PX)
                note = ""
            except NSTError as exc:
                image, note = None, str(exc)
            except Exception as exc:  # a thumbnail never takes the app down
                image, note = None, f"{which}: {exc}"
            self.call_from_thread(self.pane.thumbnail, which, image, note)
            for text in notes:  # e.g. an animated GIF: say which frame is used
                self.call_from_thread(self.notify, text, title=f"{which} image")

    @work(thread=True, exclusive=True, exit_on_error=False, group="run")
    def job_worker(self, active: ActiveJob, label: str) -> Any:
        """One job, start to end, in this thread; progress leaves it as messages."""
        job_id = active.state.run_id
        active.began.set()
        try:
            self.post_message(JobNote(job_id, "importing torch"))
            from nst_tui.job.run import run_job
            from nst_tui.tui.relay import JobRelay

            relay = JobRelay(self.post_message, job_id, active.state.job)
            active.result = run_job(
                active.state.job,
                out_root=self.outputs,
                label=label,
                listeners=[relay],
                cancel=active.cancel,
                hurry=active.hurry,
            )
            return active.result
        finally:
            active.ended.set()  # what quitting on a signal waits for

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if worker.group == "warmup":
            if state == WorkerState.SUCCESS:
                self.form.check()  # the memory line, with the device's figures now known
                if self.active is None and self.status.state.state in ("starting", "loading"):
                    self.status.show(state="idle", detail="")
            elif state == WorkerState.ERROR:
                self.status.show(state="failed", detail=f"cannot import torch: {worker.error}")
            return
        if worker.group != "run" or self.active is None:
            return
        if state == WorkerState.SUCCESS:
            result = worker.result
            assert isinstance(result, JobResult)  # what job_worker returns
            self._job_ended(result)
        elif state == WorkerState.ERROR:
            self._job_failed(worker.error)
        elif state == WorkerState.CANCELLED:
            self._job_failed(None)

    # ---- messages from the job ---------------------------------------------------
    @on(JobNote)
    def _job_note(self, message: JobNote) -> None:
        if self.session.mine(message.job_id) is None:
            return
        state = self.status.state.state
        if state == "running":
            self.status.show(detail=message.text)
        elif state != "cancelling":
            self.status.show(state="loading", detail=message.text)

    @on(JobBegan)
    def _job_began(self, message: JobBegan) -> None:
        job = self.session.mine(message.job_id)
        if job is None:
            return
        job.batches = message.batches
        job.folder = message.folder  # the viewer reads a running run's frames there
        self.pane.retitle(job)
        cancelling = self.active is not None and self.active.cancel.is_set()
        state = "cancelling" if cancelling else "running"
        self.status.show(state=state, detail="", device=message.device, backbone=message.backbone)

    @on(NewsReady)
    def _job_news(self, message: NewsReady) -> None:
        job = self.session.mine(message.job_id)
        news = message.box.take() if job is not None else None
        if job is None or news is None:  # not the running job's, or taken with an earlier one
            return
        message.box.pace.drawn()
        job.apply(news.cells)
        self.pane.update(job, news.cells)
        shown = news.cells.get(job.selected)
        if shown is not None and shown.rows:
            self.losses.add(shown.rows)
        changes: dict[str, object] = {}
        if self.status.state.state == "loading":
            changes = {"state": "running", "detail": ""}
        self.status.show(
            iteration=news.completed,
            total=news.total,
            it_per_s=news.rate,
            tflop_s=news.tflop_s,
            of_peak=news.of_peak,
            gpu_memory=news.gpu_memory,
            **changes,
        )

    @on(SweepGrid.CellSelected)
    def _cell_selected(self, message: SweepGrid.CellSelected) -> None:
        self._show_losses(message.state, message.index)

    def _show_losses(self, job: JobState, index: int) -> None:
        self.losses.replace(job.cells[index].rows)
        self.losses.border_title = plain(job.loss_title(index))

    def _job_ended(self, result: JobResult) -> None:
        """The worker returned: every cell finished, was cancelled, or failed."""
        job = self.session.ended(result)
        record = job.record
        self.pane.ended(job)
        self.history.put(record)
        done, rate = job.figures(result)
        self.status.show(
            state=result.status,
            detail=record.reason,
            iteration=done,
            it_per_s=rate,
            **self.status.state.work_at(rate),
            device=result.device or self.status.state.device,
            backbone=result.backbone or self.status.state.backbone,
            folder=result.folder,
        )
        failures = job.failures(result)
        if failures is not None:
            title, reasons = failures
            self.notify(reasons, title=title, severity="error", timeout=12)
        elif result.status == "cancelled":
            self.notify(f"saved to {result.folder}", title=f"{job.what} cancelled")
        self._after_job()

    def _job_failed(self, error: BaseException | None) -> None:
        """The job never got going (bad image, missing weights) or crashed."""
        job, text = self.session.failed(error)
        self.pane.ended(job)
        self.history.put(job.record)
        self.status.show(state="failed", detail=text, folder=None)
        self.notify(text, title=f"Run {job.run_id} failed", severity="error", timeout=12)
        self._after_job()

    def _after_job(self) -> None:
        self.refresh_bindings()
        if self.quit_after_run:
            self.exit(self.exit_code)

    # ---- the canvas pane and the loss pane ---------------------------------------------
    @property
    def active(self) -> ActiveJob | None:
        """The running job, if one runs (the session holds it)."""
        return self.session.active

    def show_job(self, job: JobState, *, focus: bool = False) -> None:
        """`job`'s picture in the canvas pane, and its (selected cell's) losses."""
        self.pane.show(job, focus=focus)
        self._show_losses(job, job.selected)

    # ---- starting jobs -------------------------------------------------------------
    def start_job(self, config: Config, table: SweepTable | None, label: str, base: Config) -> None:
        """Run `config` once, or every cell of `table` over it (swept fields replaced)."""
        try:
            state = self.session.start(config, table, label, base)
        except Refused as exc:
            self.notify(str(exc), severity="warning")
            return
        except ConfigError as exc:
            self.notify(str(exc), title="Sweep blocked", severity="error", timeout=12)
            return
        self.history.put(state.record)
        self.losses.reset()
        self.show_job(state, focus=True)
        self.status.show(
            state="loading",
            detail="starting",
            iteration=0,
            total=state.job.total_iterations,
            it_per_s=0.0,
            tflop_s=None,
            of_peak=None,
            unit=state.unit,
            gpu_memory=None,
            folder=None,
        )
        self.refresh_bindings()
        assert self.active is not None
        self.job_worker(self.active, label)

    def action_run(self) -> None:
        """Run (or rerun) with the form's current values."""
        config = self.form.check()
        if config is None:
            errors = self.form.errors
            self.notify(
                "\n".join(f"{k}: {m}" for k, m in errors.items()),
                title="Run blocked: fix the marked fields",
                severity="error",
            )
            first = self.form.first_invalid()
            if first is not None:
                first.focus()
            return
        session = self.session
        self.start_job(config, session.table, session.preset_name, session.preset_config)

    def action_cancel_run(self) -> None:
        """Stop the run within one iteration; the partial run is saved and marked. Again:
        the record is finished without its GIF (nst_tui/job/stop.py, as the CLI's Ctrl-C)."""
        self.stop_job("escape")

    def stop_job(self, why: str) -> str | None:
        """The next step of stopping the running job (cancel, hurry, now), said once."""
        step = self.session.stop()
        if step == CANCEL:
            self.status.show(state="cancelling", detail="")
        elif step == HURRY:
            self.notify(f"{why}: {SAYS[step]}", title="Cancelling", severity="warning")
        return step

    async def action_ask_quit(self) -> None:
        """`q`: quit, but while a job runs only when pressed twice (ctrl+q does not ask)."""
        now = time.monotonic()
        if self.active is None or now - self._quit_asked_at < QUIT_ASK_S:
            await self.action_quit()
            return
        self._quit_asked_at = now
        self.notify(
            "Press q again to cancel it and quit: the run is saved, marked cancelled. "
            "(ctrl+q does the same without asking.)",
            title="A run is going",
            severity="warning",
            timeout=QUIT_ASK_S,
        )

    async def action_quit(self) -> None:
        """Quit; a running job is cancelled and saved first (press again to leave at once)."""
        if self.active is None or self.quit_after_run:
            self.exit(self.exit_code)
            return
        self.quit_after_run = True
        if not self.active.cancel.is_set():  # an escape before: no hurry, just leave after
            self.stop_job("quit")
        self.notify("Cancelling the run and saving it, then quitting…")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MAIN_SCREEN_ACTIONS and isinstance(self.screen, ModalScreen | ViewerScreen):
            return False
        if action == "cancel_run" and self.active is None:
            # Not in the footer while there is nothing to cancel (it gives the room to the
            # layer keys at 120 columns); escape goes on to whoever wants it.
            return False
        # With no sweep loaded, ctrl+g is not in the footer.
        return not (action == "toggle_sweep" and self.session.sweep_table is None)

    # ---- the loaded sweep table (the session keeps it; the form shows it) ------------
    def set_sweep(self, table: SweepTable | None) -> None:
        """Keep `table` (None drops it) and show it above the form."""
        self.session.set_sweep(table)
        self._show_sweep_note()
        self.refresh_bindings()

    def _show_sweep_note(self) -> None:
        table = self.session.sweep_table
        if table is None:
            self.form.show_sweep(None)
        elif self.session.sweep_on:
            how = "ctrl+r runs every cell; the marked fields vary per cell. ctrl+g: off"
            self.form.show_sweep(plain(f"Sweep: {table_summary(table)}\n{how}", lines=True), table)
        else:
            how = "ctrl+r runs the form once. ctrl+g: on"
            note = plain(f"Sweep off: {table_summary(table)}\n{how}", lines=True)
            self.form.show_sweep(note, ())

    def action_toggle_sweep(self) -> None:
        """Turn the loaded sweep off (ctrl+r runs the form once) or back on."""
        if self.session.sweep_table is None:
            return
        on = self.session.toggle_sweep()
        self._show_sweep_note()
        self.notify("sweep on: ctrl+r runs every cell" if on else "sweep off")

    def action_edit_sweep(self) -> None:
        """Type the sweep table (or a first one): checked over the form's values."""
        config = self.form.check()
        if config is None:
            self.notify("Fix the marked fields first.", title="Cannot sweep", severity="error")
            return

        def check(table: SweepTable) -> str:
            expand(config, table)  # raises ConfigError naming the bad field or value
            return table_summary(table)

        def done(table: SweepTable | None) -> None:
            if table is None:
                return
            self.set_sweep(table)
            self.notify(f"sweep: {table_summary(table)}" if table else "sweep removed")

        self.push_screen(SweepEditor(self.session.sweep_table, check), done)

    # ---- presets, reset, layers, help -------------------------------------------
    def load_config(
        self, config: Config, name: str, sweep: SweepTable | None = None, base: Config | None = None
    ) -> None:
        """Fill the form with `config`, started from preset `name` (whose values are `base`,
        when `config` is not the preset's own)."""
        self.session.load(name, base or config, sweep)
        self.form.load(config)
        self._set_subtitle()
        self._show_sweep_note()
        self.refresh_bindings()
        self.show_images(config.content_image, config.style_image, delay=0.0)

    def action_pick_preset(self) -> None:
        """Load a preset from a picker."""

        def chosen(path: str | None) -> None:
            if path is None:
                return
            try:
                preset = presets.load(path)
            except NSTError as exc:
                self.notify(str(exc), title="Cannot load preset", severity="error")
                return
            self.load_config(preset.config, preset.name, preset.sweep)
            kind = "sweep preset" if preset.sweep else "preset"
            self.notify(f"loaded {kind} {preset.name}")

        self.push_screen(PresetPicker(), chosen)

    def action_save_preset(self) -> None:
        """Save the form as a preset, with the sweep table when the sweep is on."""
        config = self.form.check()
        if config is None:
            self.notify("Fix the marked fields first.", title="Cannot save", severity="error")
            return

        def saved(path: Path | None) -> None:
            if path is not None:
                self.session.preset_name, self.session.preset_config = path.stem, config
                self._set_subtitle()
                self.notify(f"saved preset {path.stem} to {path}")

        self.push_screen(SavePreset(config, "", self.session.table), saved)

    def action_reset(self) -> None:
        """Reset every field to the study's defaults (the `study` preset's values)."""
        self.load_config(Config(), "study")
        self.notify("form reset to the study's defaults")

    def action_focus_layers(self) -> None:
        """Focus the layer toggles, where 1..5 and shift+1..5 toggle content and style."""
        self.form.focus_layers()

    def action_toggle_layer_losses(self) -> None:
        """Show or hide one loss row per layer term under the four sums."""
        panel = self.losses
        panel.border_subtitle = "per layer" if panel.toggle_layers() else ""

    def action_focus_runs(self) -> None:
        """Jump to the run history (its keys: r l n m c), or from it back to the form."""
        if self.focused is self.history:
            self.form.focus_first()
        else:
            self.history.focus()

    def action_view(self, frames: bool = False) -> None:
        """The canvas pane's picture full screen (a sweep: its selected cell; with the run
        history focused, its highlighted run's); `frames`: at its first saved frame."""
        jobs, grid = self.session.jobs, self.pane.grid
        selected = self.history.selected_id()
        if self.focused is self.history and selected is not None:
            job = jobs.get(selected)
        elif self.pane.has_class("-sweep") and grid.state is not None:
            job = grid.state
        elif self.active is not None:
            job = self.active.state
        else:
            job = jobs.get(selected) if selected is not None else None
        if job is None:
            self.notify("Nothing to view yet: ctrl+r runs the form.", title="Viewer")
            return
        self.push_screen(ViewerScreen(source_for(job), frames))

    def action_frames(self) -> None:
        """The viewer at the first saved frame: `[` `]` step, space plays."""
        self.action_view(frames=True)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_command_palette(self) -> None:
        """The palette, once: not while one is open or still closing (its screen is removed
        after it leaves the stack; a second one then meant DuplicateIds), nor over a dialog."""
        if self._palette is not None and self._palette.is_attached:
            return
        if not self.use_command_palette or isinstance(self.screen, ModalScreen):
            return
        self._palette = CommandPalette(id="--command-palette")
        self.push_screen(self._palette)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)  # quit, theme, screenshot, ...
        seen = {"quit", "ask_quit"}  # Textual's own Quit stands for both
        for binding in APP_BINDINGS:
            if binding.action in seen:
                continue
            seen.add(binding.action)
            help_text = f"{binding.tooltip or binding.description} ({binding.key})"
            yield SystemCommand(
                binding.description, help_text, partial(self.run_action, binding.action)
            )
        yield SystemCommand(
            "Compare runs", "The marked run and the highlighted one (m, c)", self.compare_runs
        )

    # ---- form and history events -------------------------------------------------
    @on(PathInput.BrowseRequested)
    def _browse(self, message: PathInput.BrowseRequested) -> None:
        target = message.input
        current = Path(target.value).expanduser()
        start = current.parent if current.parent.is_dir() and str(current) else Path.cwd()

        def picked(path: str | None) -> None:
            if path is not None:
                target.value = path
                target.focus()

        label = target.id.removeprefix("field-").replace("_", " ") if target.id else "image"
        self.push_screen(FilePicker(f"Pick the {label}", start.resolve()), picked)

    @on(ParamsForm.Validated)
    def _validated(self, message: ParamsForm.Validated) -> None:
        invalid = len(message.errors)
        self.form.border_subtitle = plain(
            f"{invalid} invalid field{'s' * (invalid > 1)}"
            if invalid
            else f"preset: {self.session.preset_name}"
        )
        self.form.set_class(bool(invalid), "-has-errors")

    def on_input_changed(self, event: Any) -> None:
        if event.input.id in ("field-content_image", "field-style_image"):
            values = self.form.values()
            self.show_images(values["content_image"], values["style_image"])

    def show_images(self, content: str, style: str, delay: float = 0.4) -> None:
        """Redraw the thumbnails when either path really changed."""
        if (content, style) != self.thumbnails_of:
            self.thumbnails_of = (content, style)
            self.load_thumbnails(content, style, delay)

    @on(DataTable.RowHighlighted, "#history")
    def _history_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:  # an empty table's page key
            return
        job = self.session.viewable(int(event.row_key.value))
        if job is not None:
            self.show_job(job)

    @on(RunHistory.Requested)
    def _history_requested(self, message: RunHistory.Requested) -> None:
        run_id = message.run_id
        row = self.session.jobs[run_id].record
        if message.action == "continue":
            try:
                config = self.session.continued(run_id)
            except Refused as exc:
                self.notify(str(exc), severity="warning")
                return
            self.load_config(config, row.label, base=row.base)
            self.notify(f"run {run_id}'s config, starting from its final image: ctrl+r")
        elif message.action == "load":
            self.load_config(row.config, row.label, row.sweep, base=row.base)
            self.notify(f"loaded the config of run {run_id}")
        else:
            self.start_job(row.config, row.sweep, row.label, row.base)

    @on(RunHistory.CompareRequested)
    def compare_runs(self) -> None:
        """Open the comparison of the marked run and the highlighted one (or the two marked)."""
        pair = self.history.compare_pair()
        try:
            a, b = self.session.comparable(pair)
        except Refused as exc:
            title = "Compare needs two runs" if pair is None else "Cannot compare"
            self.notify(str(exc), title=title, severity="warning")
            return
        self.push_screen(CompareScreen(a.record, b.record, a.final, b.final))


def run_dashboard(preset: str | None, start: bool) -> int:
    """Open the dashboard, with a preset loaded (and started, with `start`)."""
    name = preset or "default"
    try:
        loaded = presets.load(name)
        config, name, sweep = loaded.config, loaded.name, loaded.sweep
    except NSTError:
        if preset is not None:
            raise  # the user asked for it: the CLI prints why and exits 2
        # Config() holds the study's values: say so, not "default" (a preset that failed).
        config, name, sweep = Config(), "study", {}
    app = NSTApp(config, preset_name=name, outputs=OUTPUTS, start=start, sweep=sweep)
    app.force_exit_after = 3.0
    result = app.run()
    if app.crash is not None:
        return report_crash(app, app.crash)
    return result if isinstance(result, int) else 0


def report_crash(app: NSTApp, crash: BaseException) -> int:
    """An error ended the dashboard (Textual has printed its traceback): keep the traceback
    in a file, say where it is and where the running job (stopped and recorded, as `run`
    does on Ctrl-C) went, and exit non-zero."""
    what = f"{type(crash).__name__}: {crash}"
    lines = [f"nst-tui: the dashboard stopped on an error: {what}"]
    saved = save_traceback(crash, app.outputs)
    where = f"above and in {saved}" if saved is not None else "above (it could not be saved)"
    lines.append(f"  the traceback is printed {where}")
    active = app.active
    if active is not None:
        active.cancel.set()
        if active.began.is_set():  # else it never will: the app's event loop is gone
            active.ended.wait(RECORD_TIMEOUT_S)
        result = active.result
        run = f"run {active.state.run_id}"
        if result is not None:
            folder = result.folder.resolve()
            lines.append(f"  {run} was stopped ({result.status}) and recorded in {folder}")
        else:
            lines.append(f"  {run} was stopped before it recorded anything")
    print(visible("\n".join(lines), lines=True), file=sys.stderr, flush=True)
    return CRASHED


def save_traceback(crash: BaseException, folder: Path) -> Path | None:
    """The traceback as text in `folder` (the outputs; else the temporary folder)."""
    text = "".join(traceback.format_exception(crash))
    name = f"nst-tui-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for place in (folder, Path(tempfile.gettempdir())):
        try:
            place.mkdir(parents=True, exist_ok=True)
            path = (place / name).resolve()
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None
