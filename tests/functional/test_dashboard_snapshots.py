"""Snapshots of the dashboard at a fixed size: idle, after a run, the help screen.

The finished run is replayed from fixed messages (not computed), so the
picture does not depend on timings or floating-point noise.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import lasting_toasts
from conftest import snapshot_config as tiny_config
from PIL import Image
from textual.pilot import Pilot
from textual.widgets import Input

from nst_tui.engine.events import Finished
from nst_tui.tui.app import NSTApp
from nst_tui.tui.messages import JobBegan, NewsReady
from nst_tui.tui.news import CellNews, JobNews, NewsBox
from nst_tui.tui.pace import Pace

SIZE = (120, 36)


def make_app() -> NSTApp:
    return NSTApp(tiny_config(), preset_name="tiny", outputs=Path("outputs"), warm_up=False)


async def settle(pilot: Pilot) -> None:
    """Thumbnails loaded, no blinking cursor, nothing left to draw."""
    for _ in range(200):
        if not any(w.is_running for w in pilot.app.workers):
            break
        await pilot.pause(0.05)
    for field in pilot.app.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def gradient(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)


async def replay_finished_run(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, NSTApp)
    await settle(pilot)
    config = tiny_config(iterations=10, sav_freq=2)
    from nst_tui.job.events import CellResult, JobResult
    from nst_tui.job.plan import single
    from nst_tui.tui.history_row import HistoryRow
    from nst_tui.tui.job_state import JobState
    from nst_tui.tui.session import ActiveJob

    record = HistoryRow(1, "tiny", config, tiny_config(), config.differences(tiny_config()))
    job = JobState(record, single(config, "tiny"))
    app.session.jobs[1] = job
    app.history.put(record)
    app.session.active = ActiveJob(job, threading.Event(), 0.0)
    folder = Path("outputs/20260101-000000-tiny")
    app.post_message(JobBegan(1, folder, 1, "cpu", "vgg16-caffe"))
    rows = [
        (i, {"total": 10.0 ** (9 - i / 2), "content": 4e6 - i * 1e5, "style": 9e8 / i, "tv": 0.3})
        for i in range(2, 11, 2)
    ]
    image = gradient(32, 24)
    preview = Image.fromarray(image)
    box = NewsBox(Pace())
    box.put(JobNews({0: CellNews(rows, 10, preview)}, 10, 10, 8.0, 0.0512, None))
    app.post_message(NewsReady(1, box))
    await pilot.pause()
    finished = Finished("finished", "", 10, 1.25, 8.0, rows[-1][1], image)
    cells = (CellResult(job.job.cells[0], folder, finished),)
    result = JobResult(folder, "finished", cells, 1.25, 10, 8.0, "cpu", "vgg16-caffe")
    app._job_ended(result)
    app.screen.set_focus(None)
    await pilot.pause()


@pytest.mark.usefixtures("fixed_device")
class TestDashboardSnapshots:
    def test_idle(self, snap_compare) -> None:
        assert snap_compare(make_app(), terminal_size=SIZE, run_before=settle)

    def test_finished_run(self, snap_compare) -> None:
        assert snap_compare(make_app(), terminal_size=SIZE, run_before=replay_finished_run)

    def test_help_screen(self, snap_compare) -> None:
        async def open_help(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("f1")
            await pilot.pause()

        assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_help)

    def test_layer_toggles(self, snap_compare) -> None:
        # The form's Layers section, scrolled to by f3: ten labelled checkboxes, two on,
        # and the toasts that say so.
        app = lasting_toasts(make_app())

        async def focus_layers(pilot: Pilot) -> None:
            await settle(pilot)
            await pilot.press("f3", "2", "exclamation_mark")
            await pilot.pause()

        assert snap_compare(app, terminal_size=SIZE, run_before=focus_layers)
