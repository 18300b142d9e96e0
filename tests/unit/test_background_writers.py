"""The optimizer's thread never waits on PNG encoding or preview shrinking.

The recorder writes frames on its own thread and the dashboard's relay shrinks and
posts on its own; both keep every frame and row, in order, and end their threads.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import eager_dashboard, tiny_config
from PIL import Image

from nst_tui import records
from nst_tui.engine.events import Finished, Frame, Progress, Status
from nst_tui.errors import RunError
from nst_tui.job.events import CellEvent
from nst_tui.job.plan import single
from nst_tui.records import RunRecorder, new_run_folder
from nst_tui.tui import poster as poster_module
from nst_tui.tui.messages import JobNote
from nst_tui.tui.news import JobNews, merged
from nst_tui.tui.pace import Pace
from nst_tui.tui.relay import JobRelay

WAIT_S = 10.0  # a bound for waits that should take milliseconds (a loaded box is slow)


def solid(value: int) -> np.ndarray:
    return np.full((24, 32, 3), value, np.uint8)


def finished(image: np.ndarray, done: int = 4) -> Finished:
    return Finished("finished", "", done, 1.0, float(done), {"total": 1.0}, image)


def named_threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


class Gate:
    """Wraps `inner` so that every call waits until the gate is opened."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.opened = threading.Event()

    def __call__(self, *args: Any) -> Any:
        assert self.opened.wait(WAIT_S), "the gate was never opened"
        return self.inner(*args)


def open_later(gate: Gate, delay: float = 0.1) -> None:
    threading.Timer(delay, gate.opened.set).start()


# ---- the recorder's frame writer ----------------------------------------------------


def test_frames_are_written_off_the_callers_thread_and_all_reach_the_gif(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(records.png_bytes)
    monkeypatch.setattr(records, "png_bytes", gate)
    recorder = RunRecorder(tiny_config(fps=10), "x", new_run_folder(tmp_path, "x"))
    shades = [40, 80, 120, 160]
    for i, shade in enumerate(shades, start=1):
        recorder(Frame(i, solid(shade)))  # returns although no frame can be encoded yet
    # Every call returned: all four frames wait, or three while the writer holds one.
    assert recorder._backlog.qsize() in (3, 4)
    assert not list(recorder.frames_dir.iterdir())

    gate.opened.set()
    folder = recorder.finish(finished(solid(200)))
    with Image.open(folder / "animation.gif") as gif:
        seen = []
        for i in range(gif.n_frames):
            gif.seek(i)
            seen.append(gif.convert("L").getpixel((0, 0)))
    assert seen == shades
    assert json.loads((folder / "run.json").read_text())["frames"] == 4
    assert not named_threads(f"frames-{folder.name}")


def test_a_slow_disk_holds_the_loop_back_once_the_backlog_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records, "FRAME_BACKLOG", 2)
    gate = Gate(records.png_bytes)
    monkeypatch.setattr(records, "png_bytes", gate)
    recorder = RunRecorder(tiny_config(), "x", new_run_folder(tmp_path, "x"))
    # One frame in the writer's hands, two waiting: the fourth must wait for the disk.
    loop = threading.Thread(target=lambda: [recorder(Frame(i, solid(i))) for i in range(1, 5)])
    loop.start()
    loop.join(0.3)
    assert loop.is_alive(), "the queue of frames is bounded"
    gate.opened.set()
    loop.join(WAIT_S)
    folder = recorder.finish(finished(solid(9)))
    assert json.loads((folder / "run.json").read_text())["frames"] == 4


def full_disk_for_frame(monkeypatch: pytest.MonkeyPatch, iteration: int) -> None:
    """`open` in records.py fails the way a full disk does for one frame's file."""
    real_open = open

    def fake_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if f"{iteration:09d}.png" in str(path) and "w" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(records, "open", fake_open, raising=False)


def test_a_failed_frame_write_is_raised_by_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk_for_frame(monkeypatch, 2)
    recorder = RunRecorder(tiny_config(), "x", new_run_folder(tmp_path, "x"))
    recorder(Frame(1, solid(10)))
    recorder(Frame(2, solid(20)))
    deadline = time.monotonic() + WAIT_S
    with pytest.raises(RunError) as info:  # whichever call comes after the writer failed
        while time.monotonic() < deadline:
            recorder(Status("tick"))
            time.sleep(0.01)
    message = str(info.value)
    assert message.startswith("could not write ") and "000000002.png" in message
    assert message.endswith("No space left on device")

    recorder(Frame(3, solid(30)))  # raised once: the lifecycle goes on to record the run
    recorder(Finished("failed", message, 3, 1.0, 3.0, {}, solid(30)))
    folder = recorder.folder
    info_json = json.loads((folder / "run.json").read_text())
    assert info_json["status"] == "failed" and info_json["frames"] == 1  # none after the failed
    with Image.open(folder / "final.png") as final:
        assert final.getpixel((0, 0))[0] == 30
    assert not named_threads(f"frames-{folder.name}")


def test_a_failed_frame_no_call_saw_fails_the_record_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk_for_frame(monkeypatch, 1)
    recorder = RunRecorder(tiny_config(), "x", new_run_folder(tmp_path, "x"))
    recorder(Frame(1, solid(10)))
    recorder(finished(solid(10)))  # the write error surfaces here: the run is failed
    record = json.loads((recorder.folder / "run.json").read_text())
    assert record["status"] == "failed" and recorder.result.status == "failed"
    assert record["reason"].endswith("000000001.png: No space left on device")
    assert not (recorder.folder / ".frames").exists(), "the scratch is freed first"


# ---- the dashboard's relay -----------------------------------------------------------


def relay_with(post: Any, iterations: int) -> Any:
    """A single run's relay (no rate limit: every frame), fed the cell's engine events."""
    relay = JobRelay(post, 1, single(tiny_config(iterations=iterations)), Pace(fastest=0))
    return lambda event: relay(CellEvent(0, event))


def progress(i: int, total: int) -> Progress:
    return Progress(i, total, {"total": float(i)}, 1.0, float(i))


def test_the_relay_keeps_every_row_in_order_when_flushes_outpace_it() -> None:
    posted: list[Any] = []
    gate = Gate(eager_dashboard(posted))
    relay = relay_with(gate, 20)
    for i in range(1, 20):
        relay(progress(i, 20))
        relay(Frame(i, solid(i)))  # the poster is stuck on the first: the rest pile up
    relay(progress(20, 20))  # a row with no frame after it: only Finished flushes it
    open_later(gate)
    relay(finished(solid(20), 20))

    # Everything was posted before Finished returned, and the thread has ended.
    assert not named_threads("relay-1")
    batches = [m.cells[0] for m in posted if isinstance(m, JobNews)]
    assert [i for m in batches for i, _ in m.rows] == list(range(1, 21))
    assert len(batches) < 20, "pending flushes were merged"
    whole = batches[0]
    for later in batches[1:]:
        whole = merged(whole, later)
    assert (whole.iteration, whole.status) == (20, "finished")
    assert whole.preview.getpixel((0, 0)) == (20, 20, 20)  # the run's end: its last canvas


def test_a_status_waits_for_the_rows_before_it() -> None:
    posted: list[Any] = []
    gate = Gate(eager_dashboard(posted))
    relay = relay_with(gate, 8)
    relay(progress(1, 8))
    relay(Frame(1, solid(1)))
    open_later(gate)
    relay(Status("scale 2 of 2"))
    assert [type(m) for m in posted] == [JobNews, JobNote]


def test_the_relay_thread_ends_when_no_finished_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poster_module, "IDLE_S", 0.05)
    posted: list[Any] = []
    relay = relay_with(eager_dashboard(posted), 8)
    relay(progress(1, 8))
    relay(Frame(1, solid(1)))  # and then the run raises: no Finished
    deadline = time.monotonic() + WAIT_S
    while named_threads("relay-1") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not named_threads("relay-1")
    assert len(posted) == 1
    relay(progress(2, 8))
    relay(Frame(2, solid(2)))  # a later flush starts a new thread
    relay(finished(solid(2), 2))
    assert [i for m in posted for i, _ in m.cells[0].rows] == [1, 2]
