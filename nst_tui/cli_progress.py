"""A rich progress bar for headless runs: engine events (ProgressView), jobs (JobView)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar
from rich.text import Text

from nst_tui.engine import events
from nst_tui.engine.events import pace, work_rate
from nst_tui.job.events import CellEvent, IterationCount, JobEvent, JobFinished, JobStarted
from nst_tui.job.plan import Job

DESCRIPTION_WIDTH = 9  # "cancelled" and "converged", the longest states
MIN_BAR = 8
# Dropped first to last when the line would not fit the terminal: the stop rule's last
# gain (how much the loss improved over its last window), the work rate, then the time so
# far, then the loss, then the rate; the count and the ETA stay.
DROP_ORDER = ("gain", "work", "elapsed", "loss", "rate", "eta", "detail")


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class FieldsColumn(ProgressColumn):
    """Count, it/s, work per second, ETA, time so far and loss, as many as fit beside a
    bar of MIN_BAR cells on the console's line (rich would cut the line mid-field)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def fields(self, task: Task) -> dict[str, str]:
        if task.fields.get("part"):  # a slow part's bar: what it is at, and its times
            remaining = 0.0 if task.finished else task.time_remaining
            part = {"detail": task.fields.get("detail", ""), "eta": f"ETA {clock(remaining)}"}
            return {k: v for k, v in part.items() if v}
        total = int(task.total or 0)
        done = f"{int(task.completed):>{len(str(total))}}/{total}"
        elapsed = task.finished_time if task.finished else task.elapsed
        remaining = 0.0 if task.finished else task.time_remaining
        out = {"count": done, "rate": f"{task.fields['rate']:>9}"}
        out["work"] = task.fields["work"]
        out["eta"] = f"ETA {clock(remaining)}"
        out["elapsed"] = clock(elapsed)
        out["loss"] = f"loss {task.fields['loss']}"
        out["gain"] = task.fields.get("gain", "")
        return {k: v for k, v in out.items() if v}

    def text(self, task: Task) -> str:
        shown = self.fields(task)
        room = self.console.width - DESCRIPTION_WIDTH - MIN_BAR - 2  # 2: column gaps
        for name in DROP_ORDER:
            if len(" ".join(shown.values())) <= room:
                break
            shown.pop(name, None)
        return " ".join(shown.values())

    def render(self, task: Task) -> Text:
        return Text(self.text(task), no_wrap=True, overflow="ellipsis")


class FitBar(BarColumn):
    """A bar as wide as the line leaves beside the description and the widest fields."""

    def __init__(self, fields: FieldsColumn, tasks: Callable[[], list[Task]]) -> None:
        super().__init__()
        self.fields, self.tasks = fields, tasks

    def render(self, task: Task) -> ProgressBar:
        widest = max((len(self.fields.text(t)) for t in self.tasks()), default=0)
        self.bar_width = max(MIN_BAR, self.fields.console.width - DESCRIPTION_WIDTH - widest - 2)
        return super().render(task)


class ProgressView:
    """Iterations, it/s (and the counted work per second), ETA, time so far and the
    current loss, as many as fit the terminal; status lines above the bar."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        fields = FieldsColumn(console)
        self.progress = Progress(
            TextColumn(f"[bold]{{task.description:<{DESCRIPTION_WIDTH}}}"),
            FitBar(fields, lambda: self.progress.tasks),
            fields,
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=total, rate=pace(0), loss="-", work="")
        self.bars: dict[str, TaskID] = {}  # a slow part's own bar, by its label
        self.parts: dict[str, float] = {}  # and how far it is

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Status):
            if event.fraction is None:
                self.progress.update(self.task, description="loading")
                self.progress.console.print(f"[dim]{escape(event.message)}[/]")
                return
            # A download, a pass in tiles: a bar of its own updated in place, not a line
            # per chunk or tile.
            label, _, detail = event.message.partition(": ")
            if label not in self.bars:
                self.bars[label] = self.progress.add_task(label, total=1.0, part=True)
            bar = self.bars[label]
            if event.fraction < self.parts.get(label, 0.0):
                # The next pass under the same label (the style's after the content's, the
                # next step's): its own ETA, not one from a bar that went backwards.
                self.progress.reset(bar)
            self.parts[label] = event.fraction
            self.progress.update(bar, completed=event.fraction, detail=detail)
        elif isinstance(event, events.Progress):
            self.progress.update(
                self.task,
                description="running",
                completed=event.iteration,
                total=event.total,  # a sweep's shrinks as cells converge early
                rate=pace(event.it_per_s),
                work="" if event.tflop_s is None else work_rate(event.tflop_s, event.of_peak),
                loss=f"{event.losses['total']:.4g}",
                gain="" if event.gain is None else f"gain {event.gain:+.1%}",
            )
        elif isinstance(event, events.Finished):
            if event.converged:  # stopped by the stop_change rule: the bar ends full, there
                self.progress.update(
                    self.task,
                    description="converged",
                    total=event.iterations_done,
                    completed=event.iterations_done,
                )
            else:
                self.progress.update(self.task, description=event.status)


class JobView:
    """A job's events on one bar: a single run's own counters and losses; a sweep's
    cell-iterations over all its cells (cell-it/s), with its status lines."""

    def __init__(self, console: Console, job: Job) -> None:
        self.console = console
        self.job = job
        self.count = IterationCount(job)
        self.bar = ProgressView(console, job.total_iterations)
        self.placed = False

    def __enter__(self) -> JobView:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def __call__(self, event: JobEvent) -> None:
        single = not self.job.is_sweep
        if isinstance(event, events.Status):
            self._status(event)
        elif isinstance(event, JobStarted) and not single:
            n = len(event.batches)
            cells = len(self.job.cells)
            self.console.print(f"[dim]{cells} cells in {n} batch{'es' * (n != 1)}[/]")
        elif isinstance(event, JobFinished) and not single:
            r = event.result
            self.bar(events.Finished(r.status, "", r.cell_iterations, r.wall_time,
                                     r.cell_it_per_s, {}, r.cells[0].finished.image))  # fmt: skip
        elif isinstance(event, CellEvent):
            changed = self.count.update(event)
            inner = event.event
            if isinstance(inner, events.Placed) and not self.placed:
                self.placed = True
                accel = inner.info.get("accel", "")
                self.console.print(
                    f"[dim]running on {escape(inner.device)} with {escape(inner.backbone)}"
                    f"{f' ({escape(str(accel))})' if accel else ''}[/]"
                )
            elif isinstance(inner, events.Status):
                self._status(inner)
            elif single and isinstance(inner, events.Progress | events.Finished):
                self.bar(inner)  # one cell: its own it/s, work rate and losses
            elif changed:
                losses = getattr(inner, "losses", {}) or {"total": float("nan")}
                elapsed = time.perf_counter() - self.count.start
                rate = self.count.rate()
                self.bar(events.Progress(self.count.completed, self.count.total, losses, rate,
                                         elapsed))  # fmt: skip

    def _status(self, event: events.Status) -> None:
        if self.count.completed == 0 or event.fraction is not None:
            self.bar(event)
        else:  # after the bar has started: just the line
            self.console.print(f"[dim]{escape(event.message)}[/]")
