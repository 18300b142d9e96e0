"""The poster: a single-slot mailbox whose own thread delivers, so listeners never wait.

A blocked delivery makes later items merge (none dropped, order kept), a drain
delivers everything before it returns and ends the thread, an idle thread ends,
and a delivery's error is raised once in the caller's thread. The sweep relay uses
it: its flush returns while a tile is being made, and every cell's rows arrive.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import eager_dashboard, tiny_config

from nst_tui.engine.events import Finished, Frame, Progress, Status
from nst_tui.job.events import BatchStarted, CellEvent, JobFinished, JobResult
from nst_tui.job.plan import expand
from nst_tui.tui import poster as poster_module
from nst_tui.tui import relay as relay_module
from nst_tui.tui.messages import JobNote
from nst_tui.tui.news import JobNews, merged
from nst_tui.tui.pace import Pace
from nst_tui.tui.poster import Poster
from nst_tui.tui.relay import JobRelay

WAIT_S = 10.0  # a bound for waits that should take milliseconds (a loaded box is slow)


class Gate:
    """Wraps `inner`: every call says it has begun, then waits until the gate opens."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, *args: Any) -> Any:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.opened.wait(WAIT_S), "the gate was never opened"
        return self.inner(*args)


def named_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def concat(older: list[int], newer: list[int]) -> list[int]:
    return older + newer


def test_items_sent_while_delivery_is_blocked_merge_in_order() -> None:
    delivered: list[list[int]] = []
    gate = Gate(delivered.append)
    poster = Poster(gate, concat, "poster-test-merge")
    poster.send([1])
    assert gate.entered.wait(WAIT_S)  # the thread holds [1] and is stuck delivering it
    for i in range(2, 6):
        poster.send([i])  # returns at once: into the one slot, merged
    assert delivered == []
    (thread,) = named_threads("poster-test-merge")
    assert thread.daemon
    gate.opened.set()
    poster.drain()
    assert delivered == [[1], [2, 3, 4, 5]]
    assert not named_threads("poster-test-merge")


def test_many_items_keep_their_order_and_drain_delivers_them_all() -> None:
    delivered: list[list[int]] = []
    poster = Poster(delivered.append, concat, "poster-test-order")
    for i in range(500):
        poster.send([i])
    poster.drain()
    assert [i for item in delivered for i in item] == list(range(500))
    assert not named_threads("poster-test-order")
    poster.drain()  # nothing pending, no thread: returns at once


def test_drain_returns_only_once_the_pending_items_are_delivered() -> None:
    delivered: list[list[int]] = []
    gate = Gate(delivered.append)
    poster = Poster(gate, concat, "poster-test-drain")
    poster.send([1])
    assert gate.entered.wait(WAIT_S)
    poster.send([2])
    drainer = threading.Thread(target=poster.drain)
    drainer.start()
    drainer.join(0.05)
    assert drainer.is_alive(), "drain returned while an item was still being delivered"
    gate.opened.set()
    drainer.join(WAIT_S)
    assert not drainer.is_alive()
    assert delivered == [[1], [2]]
    assert not named_threads("poster-test-drain")


def test_an_idle_thread_ends_and_the_next_send_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(poster_module, "IDLE_S", 0.05)
    delivered: list[list[int]] = []
    poster = Poster(delivered.append, concat, "poster-test-idle")
    poster.send([1])
    (thread,) = named_threads("poster-test-idle")
    thread.join(WAIT_S)  # no drain: the thread ends on its own
    assert not thread.is_alive()
    assert delivered == [[1]]
    poster.send([2])
    (second,) = named_threads("poster-test-idle")
    assert second is not thread
    poster.drain()
    assert delivered == [[1], [2]]
    assert not named_threads("poster-test-idle")


def test_a_delivery_error_is_raised_once_in_the_callers_thread() -> None:
    delivered: list[list[int]] = []

    def deliver(item: list[int]) -> None:
        if 0 in item:
            raise ValueError(f"cannot deliver {item}")
        delivered.append(item)

    gate = Gate(deliver)
    poster = Poster(gate, concat, "poster-test-error")
    poster.send([0])
    assert gate.entered.wait(WAIT_S)
    poster.send([1])  # waits behind the failing one, and still goes
    gate.opened.set()
    with pytest.raises(ValueError, match=r"cannot deliver \[0\]"):
        poster.drain()  # everything pending is delivered before the error is raised
    assert delivered == [[1]]
    assert not named_threads("poster-test-error")
    poster.raise_error()  # once: the caller may go on
    poster.drain()


def test_raise_error_surfaces_a_failure_before_any_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poster_module, "IDLE_S", 0.05)

    def deliver(item: list[int]) -> None:
        raise RuntimeError("no")

    poster = Poster(deliver, concat, "poster-test-raise")
    poster.send([1])
    (thread,) = named_threads("poster-test-raise")
    thread.join(WAIT_S)  # failed, then went idle and ended
    with pytest.raises(RuntimeError, match="no"):
        poster.raise_error()
    poster.raise_error()


# ---- the sweep relay ----------------------------------------------------------------


def solid(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def cell_finished(image: np.ndarray, done: int) -> Finished:
    return Finished("finished", "", done, 1.0, float(done), {"total": 1.0}, image)


def test_the_relay_makes_a_sweeps_tiles_off_the_optimizers_thread_and_keeps_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(relay_module.shrink)
    monkeypatch.setattr(relay_module, "shrink", gate)
    sweep = expand(tiny_config(iterations=6, sav_freq=1), {"content_layers": [[0], [2]]})
    posted: list[Any] = []
    relay = JobRelay(eager_dashboard(posted), 1, sweep, Pace(fastest=0))  # every round
    relay(BatchStarted(0, (0, 1), True))
    for step in range(1, 6):
        for cell in (0, 1):
            relay(CellEvent(cell, Progress(step, 6, {"total": float(step)}, 1.0, 1.0)))
            relay(CellEvent(cell, Frame(step, solid(10 * step + cell))))
        # The first round's tile is being made and cannot finish: later rounds return anyway.
        assert gate.entered.wait(WAIT_S)
    relay(CellEvent(0, Progress(6, 6, {"total": 6.0}, 1.0, 1.0)))
    relay.flush()  # a row with no frame: returns at once too
    assert posted == []
    gate.opened.set()
    relay(Status("drawing sheet.png and sheet.gif"))  # waits for the rows before it
    relay(CellEvent(0, cell_finished(solid(90), 6)))
    relay(CellEvent(1, Progress(6, 6, {"total": 6.0}, 1.0, 1.0)))
    relay(CellEvent(1, cell_finished(solid(91), 6)))
    result = JobResult(Path("sweep"), "finished", (), 1.0, 12, 12.0, "cpu", "vgg16-caffe")
    relay(JobFinished(result))

    # Everything went before JobFinished returned, from the poster's thread, which ended.
    assert gate.threads == {"relay-1"}
    assert not named_threads("relay-1")
    kinds = [type(m) for m in posted]
    note = kinds.index(JobNote)
    assert set(kinds[:note]) == {JobNews} and set(kinds[note + 1 :]) == {JobNews}
    assert note < 6, "pending rounds were merged"
    news = [m for m in posted if isinstance(m, JobNews)]
    whole = news[0]
    for later in news[1:]:
        whole = merged(whole, later)
    for cell in (0, 1):
        assert [i for i, _ in whole.cells[cell].rows] == list(range(1, 7))
        assert whole.cells[cell].preview.getpixel((0, 0)) == (90 + cell,) * 3
        assert whole.cells[cell].status == "finished"
    before_note = [c.preview for m in posted[:note] if (c := m.cells.get(0)) and c.preview]
    assert before_note[-1].getpixel((0, 0)) == (50, 50, 50)  # the newest frame
    assert news[-1].completed == 12 and news[-1].total == 12
