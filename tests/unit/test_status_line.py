"""The status line's text (and the headless bar's): rates, counted work, the fraction of
the device's peak."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nst_tui.cli_progress import ProgressView
from nst_tui.engine.events import Progress
from nst_tui.tui.widgets.status_line import RunState, describe


def test_gpu_run_shows_tflops_and_fraction_of_peak() -> None:
    state = RunState(
        "running", iteration=500, total=2500, it_per_s=2100.0, tflop_s=12.345, of_peak=0.02495
    )
    text = describe(state).plain
    assert "500/2500  2100.0 it/s  12.35 TFLOP/s (2.5% of peak)  ETA 0:01" in text


def test_cpu_run_shows_gflops_and_no_peak() -> None:
    state = RunState("running", iteration=10, total=300, it_per_s=11.7, tflop_s=0.0913)
    assert "11.7 it/s  91.3 GFLOP/s  ETA 0:25" in describe(state).plain


def test_no_work_figure_where_none_was_counted() -> None:
    sweep = RunState("running", iteration=40, total=400, it_per_s=14.4, unit="cell-it")
    assert "FLOP" not in describe(sweep).plain
    assert "14.4 cell-it/s" in describe(sweep).plain


def test_work_at_the_final_rate_keeps_the_work_per_iteration() -> None:
    state = RunState("running", it_per_s=10.0, tflop_s=0.1, of_peak=0.002)
    assert state.work_at(12.0) == {"tflop_s": pytest.approx(0.12), "of_peak": pytest.approx(0.0024)}
    assert RunState("running", it_per_s=10.0).work_at(12.0) == {}


def test_headless_bar_reads_the_same_work() -> None:
    view = ProgressView(Console(file=io.StringIO(), width=200), 100)

    def shown(tflop_s: float | None, of_peak: float | None) -> str:
        view(Progress(10, 100, {"total": 1.0}, 11.7, 0.9, tflop_s, of_peak))
        return view.progress.tasks[0].fields["work"]

    assert shown(0.0913, None) == "91.3 GFLOP/s"
    assert shown(12.345, 0.02495) == "12.35 TFLOP/s (2.5% of peak)"
    assert shown(None, None) == ""


def test_a_slow_run_says_seconds_per_iteration() -> None:
    # A 4096 px run in tiles: 0.0016 it/s would read "0.0 it/s".
    slow = RunState("running", iteration=1, total=2, it_per_s=1 / 638, tflop_s=0.0079)
    assert "1/2  638 s/it  7.9 GFLOP/s  ETA 10:38" in describe(slow).plain
    assert "0.45 it/s" in describe(RunState("running", total=9, it_per_s=0.45)).plain
    console = Console(width=100, record=True, file=io.StringIO())
    view = ProgressView(console, 2)
    view(Progress(1, 2, {"total": 6.7e7}, 1 / 84.2, 84.2))
    console.print(view.progress.get_renderable())
    assert "84 s/it" in console.export_text()
