"""One line: state, iteration / total, it/s, TFLOP/s and the fraction of the device's peak,
ETA, device and backbone, GPU memory, folder.

For a sweep the count is cell-iterations: every cell's iterations, summed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import Static

from nst_tui.engine.events import pace, work_rate
from nst_tui.text import visible

STATE_STYLES = {
    "starting": "dim",
    "idle": "dim",
    "loading": "yellow",
    "running": "bold green",
    "cancelling": "bold yellow",
    "finished": "bold cyan",
    "cancelled": "yellow",
    "failed": "bold red",
}


@dataclass(frozen=True)
class RunState:
    state: str = "starting"
    detail: str = ""  # what is loading, or why it failed
    iteration: int = 0
    total: int = 0
    it_per_s: float = 0.0
    unit: str = "it"  # "cell-it" for a sweep: iterations summed over its cells
    tflop_s: float | None = None  # None: not counted (a sweep, a multi-scale run)
    of_peak: float | None = None  # None: no datasheet peak for the device (a CPU)
    device: str = ""
    backbone: str = ""
    gpu_memory: int | None = None
    folder: Path | None = None

    def work_at(self, it_per_s: float) -> dict[str, float | None]:
        """TFLOP/s and fraction of peak at another rate (the run's overall one, at its end):
        the work of an iteration is fixed for a run."""
        if self.tflop_s is None or not self.it_per_s:
            return {}
        scale = it_per_s / self.it_per_s
        of_peak = None if self.of_peak is None else self.of_peak * scale
        return {"tflop_s": self.tflop_s * scale, "of_peak": of_peak}


def eta(state: RunState) -> str:
    if state.it_per_s <= 0 or state.total <= state.iteration:
        return "-"
    seconds = round((state.total - state.iteration) / state.it_per_s)
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def describe(s: RunState) -> Text:
    text = Text()
    text.append(f" {s.state} ", style=f"reverse {STATE_STYLES.get(s.state, '')}")
    if s.detail:
        text.append(f" {visible(s.detail)}")  # a reason quotes paths and values
    if s.total:
        text.append(f"  {s.iteration}/{s.total}")
        text.append(f"  {pace(s.it_per_s, s.unit)}" if s.it_per_s else "")
        if s.it_per_s and s.tflop_s is not None:
            text.append(f"  {work_rate(s.tflop_s, s.of_peak)}")
        if s.state == "running":
            text.append(f"  ETA {eta(s)}")
    if s.device:
        text.append(visible(f"  {s.device} · {s.backbone}"), style="dim")
    if s.gpu_memory is not None:
        text.append(f"  GPU {s.gpu_memory / 2**30:.2f} GiB", style="dim")
    if s.folder is not None:
        text.append(visible(f"  → {s.folder}"), style="bold")
    return text


class StatusLine(Static):
    """The run's state in one line; `show(**changes)` updates it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.state = RunState()

    def on_mount(self) -> None:
        self.update(describe(self.state))

    def show(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        # One line of a fixed height: a repaint, not a layout of the whole screen (which
        # costs the UI thread tens of ms per update, time a run's thread waits for).
        self.update(describe(self.state), layout=False)
