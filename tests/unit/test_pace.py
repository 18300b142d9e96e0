"""The dashboard's pace: how often a relay posts, from what drawing costs the UI thread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import eager_dashboard, tiny_config

from nst_tui.engine.events import Frame, Progress
from nst_tui.job.events import CellEvent
from nst_tui.job.plan import single
from nst_tui.tui.news import JobNews
from nst_tui.tui.pace import BUDGET, FASTEST, SLOWEST, Pace
from nst_tui.tui.relay import JobRelay


class Clock:
    """A stand-in for the UI thread's CPU clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cheap_updates_go_at_the_fastest_rate() -> None:
    clock = Clock()
    pace = Pace(cpu_clock=clock)
    for _ in range(5):
        pace.drawn()
        clock.now += 0.001  # 1 ms of UI work per update: 2% of a 50 ms interval
    assert pace.interval == FASTEST


def test_dear_updates_are_spaced_to_keep_the_ui_within_its_budget() -> None:
    clock = Clock()
    pace = Pace(cpu_clock=clock)
    pace.drawn()
    for _ in range(8):
        clock.now += 0.030  # 30 ms per update
        pace.drawn()
    assert pace.cost == pytest.approx(0.030)
    assert pace.interval == pytest.approx(0.030 / BUDGET)  # 0.6 s: 5% of the UI's time
    # The cost is averaged: one slow update (a resize) does not halve the rate at once.
    clock.now += 0.090
    pace.drawn()
    assert 0.030 / BUDGET < pace.interval < 0.090 / BUDGET
    # However dear, the dashboard still shows something every second.
    for _ in range(8):
        clock.now += 0.5
        pace.drawn()
    assert pace.interval == SLOWEST


def test_the_relay_posts_at_the_paces_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames every iteration; with an interval of 1 s and a clock that moves 0.25 s per
    frame, one flush in four goes, and every row still arrives, in order."""
    wall = Clock()
    monkeypatch.setattr("nst_tui.tui.relay.time.monotonic", wall)
    pace = Pace(cpu_clock=Clock())
    pace.interval = 1.0
    posted: list[Any] = []
    relay = JobRelay(eager_dashboard(posted), 1, single(tiny_config(iterations=16)), pace)
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(1, 16):
        wall.now += 0.25
        relay(CellEvent(0, Progress(i, 16, {"total": float(i)}, 1.0, float(i))))
        relay(CellEvent(0, Frame(i, image)))
        relay.poster.drain()  # each flush posted on its own (not merged into a later one)
    batches = [m.cells[0] for m in posted if isinstance(m, JobNews)]
    assert [m.iteration for m in batches] == [4, 8, 12]
    assert [i for m in batches for i, _ in m.rows] == list(range(1, 13))


def test_the_relay_alone_decides_how_fast_a_job_may_go() -> None:
    """A single run at most 20 posts a second, a sweep's grid 10; the dashboard feeds the
    same pace through the job's news box."""
    from nst_tui.job.plan import expand
    from nst_tui.tui.pace import SWEEP_FASTEST

    run = JobRelay(print, 1, single(tiny_config()))
    sweep = JobRelay(print, 2, expand(tiny_config(), {"content_layers": [[0], [2]]}))
    assert (run.pace.fastest, sweep.pace.fastest) == (FASTEST, SWEEP_FASTEST)
    assert run.box.pace is run.pace and sweep.box.pace is sweep.pace


def test_a_slow_steps_count_is_posted_without_waiting_for_a_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Steps of a minute (a 4096 px canvas), a frame every 10: each step's count still
    # reaches the dashboard, and the logged step's frame with it.
    wall = Clock()
    monkeypatch.setattr("nst_tui.tui.relay.time.monotonic", wall)
    pace = Pace(cpu_clock=Clock())
    posted: list[Any] = []
    relay = JobRelay(eager_dashboard(posted), 1, single(tiny_config(iterations=20)), pace)
    for i in range(1, 11):
        wall.now += 60.0
        logged = i == 10
        relay(CellEvent(0, Progress(i, 20, {"total": float(i)}, 1 / 60, 60.0 * i, logged=logged)))
        if logged:
            relay(CellEvent(0, Frame(i, np.zeros((4, 4, 3), np.uint8))))
        relay.poster.drain()
    news = [m for m in posted if isinstance(m, JobNews)]
    assert [m.completed for m in news if m.completed] == list(range(1, 11))
