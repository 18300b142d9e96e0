"""A rich progress bar as an engine listener for headless runs."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nst_tui.engine import events
from nst_tui.engine.events import work_rate


class ProgressView:
    """Iterations, it/s (and the counted work per second), ETA and the current loss;
    status lines above the bar."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8} it/s"),
            TextColumn("{task.fields[work]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            TextColumn("loss {task.fields[loss]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=total, rate="-", loss="-", work="")
        self.download: TaskID | None = None

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
            # A download: one bar updated in place, not a line per chunk.
            if self.download is None:
                self.download = self.progress.add_task(
                    "download", total=1.0, rate="-", loss="-", work=""
                )
            self.progress.update(self.download, completed=event.fraction, description="download")
        elif isinstance(event, events.Progress):
            self.progress.update(
                self.task,
                description="running",
                completed=event.iteration,
                rate=f"{event.it_per_s:.1f}",
                work="" if event.tflop_s is None else work_rate(event.tflop_s, event.of_peak),
                loss=f"{event.losses['total']:.4g}",
            )
        elif isinstance(event, events.Finished):
            self.progress.update(self.task, description=event.status)
