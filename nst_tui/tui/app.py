"""The dashboard App: layout, keys, the run worker and what its messages change.

Torch is never imported here at start-up: the first screen paints at once,
a background worker imports the engine, and each run imports it again (free
by then) inside its thread worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Label
from textual.worker import Worker, WorkerState, get_current_worker

from nst_tui import presets
from nst_tui.config import N_LAYERS, Config
from nst_tui.errors import NSTError
from nst_tui.tui.messages import RunProgress, RunStarted, RunStatus
from nst_tui.tui.pace import Pace
from nst_tui.tui.screens.compare_screen import CompareScreen
from nst_tui.tui.screens.file_picker import FilePicker
from nst_tui.tui.screens.help_screen import HelpScreen
from nst_tui.tui.screens.preset_picker import PresetPicker
from nst_tui.tui.screens.save_preset import SavePreset
from nst_tui.tui.sweep_runs import SweepRuns, SweepTable
from nst_tui.tui.sweep_state import SweepState
from nst_tui.tui.widgets.footer import Footer
from nst_tui.tui.widgets.image_view import ImageView, shrink
from nst_tui.tui.widgets.loss_panel import LossPanel
from nst_tui.tui.widgets.params_form import ParamsForm, PathInput
from nst_tui.tui.widgets.run_history import RunHistory, RunRecord
from nst_tui.tui.widgets.status_line import StatusLine
from nst_tui.tui.widgets.sweep_grid import SweepGrid

DEFAULT_OUTPUTS = Path("outputs")
THUMB_PX = 128
STYLE_KEYS = ("exclamation_mark", "at", "number_sign", "dollar_sign", "percent_sign")
CONTENT_GROUP = Binding.Group("Content", compact=True)
STYLE_GROUP = Binding.Group("Style", compact=True)
# Actions that make no sense behind a modal (priority keys reach the App even there).
RECORD_TIMEOUT_S = 600.0  # a cancelled run stops within an iteration, then writes its GIF
MAIN_SCREEN_ACTIONS = {
    *("run", "cancel_run", "pick_preset", "save_preset", "reset", "toggle_layer", "toggle_sweep")
}


@dataclass
class ActiveRun:
    record: RunRecord
    cancel: threading.Event
    started: float
    ended: threading.Event = field(default_factory=threading.Event)  # set by the worker thread
    sweep: SweepState | None = None  # set when this run is a sweep
    pace: Pace = field(default_factory=Pace)  # how often its relay may post


class NSTApp(SweepRuns, App[int]):
    """Run, watch and rerun style-transfer experiments from the keyboard."""

    CSS_PATH = "app.tcss"
    TITLE = "nst-tui"
    # Nothing focused at start, so the plain keys (digits, q, ?) work at once;
    # tab enters the form. Each modal names what it focuses.
    AUTO_FOCUS = None
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [
        (0, "-narrow"),
        (110, "-wide"),
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run", "Run", priority=True, tooltip="Run the form's config"),
        Binding("escape", "cancel_run", "Cancel", tooltip="Stop the run and save it, marked"),
        Binding("ctrl+o", "pick_preset", "Preset", priority=True, tooltip="Load a preset"),
        Binding("ctrl+s", "save_preset", "Save", priority=True, tooltip="Save form as a preset"),
        Binding("ctrl+n", "reset", "Reset", priority=True, tooltip="Form to the defaults"),
        Binding("ctrl+g", "toggle_sweep", "Sweep", priority=True, tooltip="Sweep off / on"),
        Binding("f2", "edit_sweep", "Sweep table", priority=True, tooltip="Type a sweep table"),
        Binding("ctrl+t", "focus_runs", "Runs", priority=True, tooltip="Runs list / form"),
        Binding(
            "ctrl+l", "toggle_layer_losses", "Layers", priority=True, tooltip="Per-layer losses"
        ),
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Cancel and save a run, quit"),
        Binding("q", "quit", "Quit", show=False),
        *(
            Binding(
                str(i + 1), f"toggle_layer('content', {i})", f"content {i + 1}", group=CONTENT_GROUP
            )
            for i in range(N_LAYERS)
        ),
        *(
            Binding(key, f"toggle_layer('style', {i})", f"style {i + 1}", group=STYLE_GROUP)
            for i, key in enumerate(STYLE_KEYS)
        ),
    ]

    def __init__(
        self,
        config: Config | None = None,
        *,
        preset_name: str = "default",
        outputs: Path = DEFAULT_OUTPUTS,
        start: bool = False,
        warm_up: bool = True,
        sweep: SweepTable | None = None,
    ) -> None:
        super().__init__()
        self.initial = config or Config()
        self.preset_name = preset_name
        self.preset_config = self.initial
        self.outputs = outputs
        self.start_at_once = start
        self.warm_up_engine = warm_up
        self.records: dict[int, RunRecord] = {}
        self.finals: dict[int, Image.Image] = {}
        self.active: ActiveRun | None = None
        self.quit_after_run = False
        self.exit_code = 0  # 128 + the signal's number when a signal ends the app
        # After SIGTERM/SIGHUP, seconds to wait (once a run's record is written) before the
        # process leaves even if Textual is stuck on a terminal that is gone; None: never.
        self.force_exit_after: float | None = None
        self._signals: list[int] = []
        self.thumbnails_of: tuple[str, str] | None = None
        self.sweep_table = sweep or None
        self.sweep_on = self.sweep_table is not None
        self.sweeps: dict[int, SweepState] = {}

    # ---- layout ------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ParamsForm(self.initial, id="form")
            with Vertical(id="right"):
                with Horizontal(id="canvas-pane"):
                    yield ImageView("press ctrl+r to run", id="canvas")
                    with Vertical(id="thumbs"):
                        yield Label("content", classes="thumb-label")
                        yield ImageView("…", id="thumb-content")
                        yield Label("style", classes="thumb-label")
                        yield ImageView("…", id="thumb-style")
                    yield SweepGrid(id="sweep-grid")
                yield LossPanel(id="losses")
                yield RunHistory(id="history")
        yield StatusLine(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.form.border_title = "Parameters"
        self.query_one("#canvas-pane").border_title = "Canvas"
        self.query_one("#losses").border_title = "Loss"
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
        if self.active is None or self.quit_after_run:
            self.exit(self.exit_code)
            return
        self.quit_after_run = True
        self.action_cancel_run()
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
        # `[/x]` in a file name must not be read as markup (MarkupError ends the app).
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

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

    @property
    def form(self) -> ParamsForm:
        return self.query_one(ParamsForm)

    @property
    def history(self) -> RunHistory:
        return self.query_one(RunHistory)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    @property
    def canvas(self) -> ImageView:
        return self.query_one("#canvas", ImageView)

    def _set_subtitle(self) -> None:
        self.form.border_subtitle = f"preset: {self.preset_name}"

    # ---- background work -----------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="warmup")
    def warm_up(self) -> None:
        """Import torch and the engine off the UI thread (seconds on a cold disk)."""
        import nst_tui.runner  # noqa: F401

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
            self.call_from_thread(self._show_thumbnail, which, image, note)
            for text in notes:  # e.g. an animated GIF: say which frame is used
                self.call_from_thread(self.notify, text, title=f"{which} image")

    def _show_thumbnail(self, which: str, image: Image.Image | None, note: str) -> None:
        view = self.query_one(f"#thumb-{which}", ImageView)
        view.placeholder = note or "…"
        view.image = image

    @work(thread=True, exclusive=True, exit_on_error=False, group="run")
    def run_job(self, run_id: int, config: Config, label: str, active: ActiveRun) -> Any:
        """One run, start to end, in this thread; progress leaves it as messages."""
        try:
            self.post_message(RunStatus(run_id, "importing torch"))
            from nst_tui.runner import run
            from nst_tui.tui.relay import Relay

            relay = Relay(self.post_message, run_id, config, active.pace)
            return run(
                config, out_root=self.outputs, label=label, listeners=[relay], cancel=active.cancel
            )
        finally:
            active.ended.set()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        if worker.group == "warmup":
            if state == WorkerState.SUCCESS:
                if self.active is None and self.status.state.state in ("starting", "loading"):
                    self.status.show(state="idle", detail="")
            elif state == WorkerState.ERROR:
                self.status.show(state="failed", detail=f"cannot import torch: {worker.error}")
            return
        if worker.group != "run" or self.active is None:
            return
        if state == WorkerState.SUCCESS and self.active.sweep is not None:
            self.sweep_ended(worker.result)
        elif state == WorkerState.SUCCESS:
            self._run_ended(worker.result)
        elif state == WorkerState.ERROR:
            self._run_failed(worker.error)
        elif state == WorkerState.CANCELLED:
            self._run_failed(None)

    # ---- messages from the run -------------------------------------------------
    @on(RunStatus)
    def _run_status(self, message: RunStatus) -> None:
        mine = self.active and message.run_id == self.active.record.run_id
        if mine and self.status.state.state != "cancelling":
            self.status.show(state="loading", detail=message.text)

    @on(RunStarted)
    def _run_started(self, message: RunStarted) -> None:
        if self.active and message.run_id == self.active.record.run_id:
            state = "cancelling" if self.active.cancel.is_set() else "running"
            self.status.show(
                state=state, detail="", device=message.device, backbone=message.backbone
            )

    @on(RunProgress)
    def _run_progress(self, message: RunProgress) -> None:
        if not (self.active and message.run_id == self.active.record.run_id):
            return
        self.active.pace.drawn()
        self.query_one(LossPanel).add(message.rows)
        self.active.record.rows.extend(message.rows)
        if message.preview is not None:
            self.canvas.image = message.preview
        self.query_one(
            "#canvas-pane"
        ).border_title = f"Canvas · run {message.run_id} · {message.iteration}/{message.total}"
        self.status.show(
            iteration=message.iteration,
            total=message.total,
            it_per_s=message.it_per_s,
            tflop_s=message.tflop_s,
            of_peak=message.of_peak,
            gpu_memory=message.gpu_memory,
        )

    def _run_ended(self, result: Any) -> None:
        """The worker returned a RunResult: finished, cancelled or failed (diverged)."""
        assert self.active is not None
        record, fin = self.active.record, result.finished
        record.status, record.reason = fin.status, fin.reason
        record.losses, record.wall_time, record.folder = fin.losses, fin.wall_time, result.folder
        final = shrink(Image.fromarray(fin.image), 256)
        self.finals[record.run_id] = final
        self.canvas.image = final
        self.query_one(
            "#canvas-pane"
        ).border_title = f"Canvas · run {record.run_id} {fin.status} · {fin.iterations_done} it"
        self.history.put(record)
        self.status.show(
            state=fin.status,
            detail=fin.reason,
            iteration=fin.iterations_done,
            it_per_s=fin.it_per_s,
            **self.status.state.work_at(fin.it_per_s),
            device=result.device,
            backbone=result.backbone,
            folder=result.folder,
        )
        if fin.status == "failed":
            self.notify(fin.reason, title=f"Run {record.run_id} failed", severity="error")
        elif fin.status == "cancelled":
            self.notify(f"saved to {result.folder}", title=f"Run {record.run_id} cancelled")
        self._after_run()

    def _run_failed(self, error: BaseException | None) -> None:
        """The run never got going (bad image, missing weights) or crashed."""
        assert self.active is not None
        record = self.active.record
        if self.active.sweep is not None:
            self.sweep_stopped("failed")
        if error is None:
            text = "the worker was stopped"
        elif isinstance(error, NSTError):
            text = str(error)  # written for the user already
        else:
            text = f"{type(error).__name__}: {error}"
        record.status, record.reason = "failed", text
        record.wall_time = time.monotonic() - self.active.started
        self.history.put(record)
        self.status.show(state="failed", detail=text, folder=None)
        self.notify(text, title=f"Run {record.run_id} failed", severity="error", timeout=12)
        self._after_run()

    def _after_run(self) -> None:
        self.active = None
        self.refresh_bindings()
        if self.quit_after_run:
            self.exit(self.exit_code)

    # ---- starting runs -----------------------------------------------------------
    def start_run(self, config: Config, label: str, base: Config) -> None:
        if self.active is not None:
            self.notify("A run is in progress; escape cancels it.", severity="warning")
            return
        run_id = max(self.records, default=0) + 1
        record = RunRecord(run_id, label, config, base, config.differences(base))
        self.records[run_id] = record
        self.history.put(record)
        self.active = ActiveRun(record, threading.Event(), time.monotonic())
        self.show_canvas_view()
        self.query_one(LossPanel).reset()
        self.query_one("#canvas-pane").border_title = f"Canvas · run {run_id}"
        self.status.show(
            state="loading",
            detail="starting",
            iteration=0,
            total=config.iterations,
            it_per_s=0.0,
            tflop_s=None,
            of_peak=None,
            unit="it",
            gpu_memory=None,
            folder=None,
        )
        self.refresh_bindings()
        self.run_job(run_id, config, label, self.active)

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
        if self.sweep_on and self.sweep_table:
            self.start_sweep(config, self.sweep_table, self.preset_name, self.preset_config)
            return
        self.start_run(config, self.preset_name, self.preset_config)

    def action_cancel_run(self) -> None:
        """Stop the run within one iteration; the partial run is saved and marked."""
        if self.active is None or self.active.cancel.is_set():
            return
        self.active.cancel.set()
        self.status.show(state="cancelling", detail="")

    async def action_quit(self) -> None:
        """Quit; a running job is cancelled and saved first (press again to leave at once)."""
        if self.active is None or self.quit_after_run:
            self.exit(self.exit_code)
            return
        self.quit_after_run = True
        self.action_cancel_run()
        self.notify("Cancelling the run and saving it, then quitting…")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MAIN_SCREEN_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action == "cancel_run" and self.active is None:
            # Not in the footer while there is nothing to cancel (it gives the room to the
            # layer keys at 120 columns); escape goes on to whoever wants it.
            return False
        # With no sweep loaded, ctrl+g is not in the footer.
        return not (action == "toggle_sweep" and self.sweep_table is None)

    # ---- presets, reset, layers, help -------------------------------------------
    def load_config(self, config: Config, name: str, sweep: SweepTable | None = None) -> None:
        self.preset_name, self.preset_config = name, config
        self.form.load(config)
        self._set_subtitle()
        self.set_sweep(sweep)
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
                self.preset_name, self.preset_config = path.stem, config
                self._set_subtitle()
                self.notify(f"saved preset {path.stem} to {path}")

        sweep = self.sweep_table if self.sweep_on else None
        self.push_screen(SavePreset(config, "", sweep), saved)

    def action_reset(self) -> None:
        """Reset every field to the study's defaults."""
        self.load_config(Config(), "default")
        self.notify("form reset to the defaults")

    def action_toggle_layer(self, kind: str, index: int) -> None:
        """Toggle content or style layer index (0-based)."""
        self.form.query_one("#layers").toggle(kind, index)  # type: ignore[attr-defined]

    def action_toggle_layer_losses(self) -> None:
        """Show or hide one loss row per layer term under the four sums."""
        panel = self.query_one(LossPanel)
        panel.border_subtitle = "per layer" if panel.toggle_layers() else ""

    def action_focus_runs(self) -> None:
        """Jump to the run history (its keys: r l n m c), or from it back to the form."""
        if self.focused is self.history:
            self.form.focus_first()
        else:
            self.history.focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Run", "Run with the form's current values (ctrl+r)", self.action_run)
        yield SystemCommand("Cancel run", "Stop and save the run (escape)", self.action_cancel_run)
        yield SystemCommand("Load preset", "Pick a preset (ctrl+o)", self.action_pick_preset)
        yield SystemCommand("Save preset", "Save the form (ctrl+s)", self.action_save_preset)
        yield SystemCommand("Reset to defaults", "Every field (ctrl+n)", self.action_reset)
        yield SystemCommand("Runs list", "Focus the run history (ctrl+t)", self.action_focus_runs)
        yield SystemCommand(
            "Per-layer losses",
            "Show / hide each layer's term (ctrl+l)",
            self.action_toggle_layer_losses,
        )
        yield SystemCommand("Sweep off / on", "The loaded sweep (ctrl+g)", self.action_toggle_sweep)
        yield SystemCommand(
            "Compare runs", "The marked run and the highlighted one (m, c)", self.compare_runs
        )
        yield SystemCommand("Help", "Keys and panes (f1)", self.action_help)

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
        self.form.border_subtitle = (
            f"{invalid} invalid field{'s' * (invalid > 1)}"
            if invalid
            else f"preset: {self.preset_name}"
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
        if event.row_key.value is None:
            return
        run_id = int(event.row_key.value)
        sweep = self.sweeps.get(run_id)
        if sweep is not None and self.active is None:
            self.show_sweep_view(sweep)
            return
        final = self.finals.get(run_id)
        if final is not None and self.active is None:
            self.show_canvas_view()
            self.canvas.image = final
            record = self.records[run_id]
            self.query_one("#canvas-pane").border_title = f"Canvas · run {run_id} {record.status}"

    @on(RunHistory.Requested)
    def _history_requested(self, message: RunHistory.Requested) -> None:
        record = self.records[message.run_id]
        if message.action == "continue":
            if record.sweep is not None or record.folder is None:
                self.notify("only a single run with a folder can be continued", severity="warning")
                return
            self.load_config(record.config.replace(init=f"run:{record.folder}"), record.label)
            self.preset_config = record.base
            self.notify(f"run {record.run_id}'s config, starting from its final image: ctrl+r")
        elif message.action == "load":
            self.load_config(record.config, record.label, record.sweep)
            self.preset_config = record.base
            self.notify(f"loaded the config of run {record.run_id}")
        elif record.sweep is not None:
            self.start_sweep(record.config, record.sweep, record.label, record.base)
        else:
            self.start_run(record.config, record.label, record.base)

    @on(RunHistory.CompareRequested)
    def compare_runs(self) -> None:
        """Open the comparison of the marked run and the highlighted one (or the two marked)."""
        pair = self.history.compare_pair()
        if pair is None:
            self.notify(
                "Mark a run with m, highlight another (or mark it too), then press c.",
                title="Compare needs two runs",
                severity="warning",
            )
            return
        a, b = (self.records[run_id] for run_id in pair)
        for record in (a, b):
            why = ""
            if record.sweep is not None:
                why = "is a sweep: its cells are in its folder's sheet"
            elif self.active is not None and record is self.active.record:
                why = "is still running"
            if why:
                text = f"run {record.run_id} {why}"
                self.notify(text, title="Cannot compare", severity="warning")
                return
        self.push_screen(CompareScreen(a, b, self.finals.get(a.run_id), self.finals.get(b.run_id)))


def run_dashboard(preset: str | None, start: bool) -> int:
    """Open the dashboard, with a preset loaded (and started, with `start`)."""
    name = preset or "default"
    try:
        loaded = presets.load(name)
        config, name, sweep = loaded.config, loaded.name, loaded.sweep
    except NSTError:
        if preset is not None:
            raise  # the user asked for it: the CLI prints why and exits 2
        config, sweep = Config(), {}
    app = NSTApp(config, preset_name=name, outputs=DEFAULT_OUTPUTS, start=start, sweep=sweep)
    app.force_exit_after = 3.0
    result = app.run()
    return result if isinstance(result, int) else 0
