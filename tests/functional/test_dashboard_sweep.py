"""Sweeps in the dashboard: a sweep preset loaded by keys, run as a grid, cancelled, quit.

Real (tiny) sweeps: two Adam cells at 32 px on the offline backbone. The
finished sweep view is also a snapshot, replayed from fixed messages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    STARRY,
    TUBINGEN,
    eager_dashboard,
    lasting_toasts,
    snapshot_config,
    tiny_config,
)
from test_dashboard import wait_for_run, wait_until_running
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Sparkline

from nst_tui import presets
from nst_tui.engine.events import Finished
from nst_tui.job.events import CellResult, JobResult
from nst_tui.records import FILES
from nst_tui.tui.app import NSTApp
from nst_tui.tui.messages import JobBegan, NewsReady
from nst_tui.tui.news import CellNews, JobNews, NewsBox, merged
from nst_tui.tui.pace import Pace
from nst_tui.tui.screens.help_screen import HELP_TEXT
from nst_tui.tui.screens.preset_picker import PresetPicker
from nst_tui.tui.widgets.loss_panel import LossPanel
from nst_tui.tui.widgets.params_form import LayerToggles
from nst_tui.tui.widgets.run_history import COLUMNS
from nst_tui.tui.widgets.sweep_grid import SweepGrid, SweepTile

SIZE = (120, 36)
TWO_CELLS = "content_layers = [[0], [2]]"
LABELS = ["content conv1_1", "content conv3_1"]
SWEEP_FILES = ["sheet.gif", "sheet.png", "sweep.json", "sweep.toml"]


def write_sweep_preset(name: str, sweep: str = TWO_CELLS, **fields: object) -> Path:
    """A sweep preset in the user's preset folder (a temporary one in tests)."""
    base = {
        "content_image": str(TUBINGEN),
        "style_image": str(STARRY),
        "size": 32,
        "iterations": 4,
        "sav_freq": 2,
        "optimizer": "adam",
        "backbone": "vgg16-caffe",
        "device": "cpu",
        **fields,
    }
    folder = Path(os.environ["NST_TUI_PRESETS"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in base.items()]
    path.write_text("\n".join([*lines, "[sweep]", sweep, ""]))
    return path


def sweep_app(tmp_path: Path, name: str, **fields: object) -> NSTApp:
    """The app opened on a sweep preset, as `nst-tui --preset NAME` opens it."""
    preset = presets.load(str(write_sweep_preset(name, **fields)))
    return NSTApp(
        preset.config,
        preset_name=preset.name,
        outputs=tmp_path / "outputs",
        warm_up=False,
        sweep=preset.sweep,
    )


def tiles(app: NSTApp) -> list[SweepTile]:
    return list(app.query_one(SweepGrid).query(SweepTile))


def history_row(app: NSTApp, run_id: int) -> dict[str, str]:
    cells = app.history.get_row(str(run_id))
    return dict(zip(COLUMNS, (str(c) for c in cells), strict=True))


async def laid_out(pilot: Pilot, app: NSTApp, timeout: float = 10.0) -> None:
    """Until every tile has its size (tiles made while the grid comes back start at 0: on
    a loaded machine one pause may not reach the layout)."""
    waited = 0.0
    while not all(t.size.width for t in tiles(app)):
        assert waited < timeout, "the tiles were not laid out in time"
        await pilot.pause(0.05)
        waited += 0.05
    await pilot.pause()  # their resize handlers, which pick the titles


def grid_shown(app: NSTApp) -> bool:
    return app.query_one("#canvas-pane").has_class("-sweep") and app.query_one(SweepGrid).display


async def pick_preset(pilot: Pilot, app: NSTApp, filename: str) -> None:
    await pilot.press("ctrl+o")
    await pilot.pause()
    assert isinstance(app.screen, PresetPicker)
    options = app.screen.query_one(OptionList)
    ids = [options.get_option_at_index(i).id or "" for i in range(options.option_count)]
    options.highlighted = next(i for i, id_ in enumerate(ids) if id_.endswith(filename))
    await pilot.press("enter")
    await pilot.pause()


# ---- a whole sweep ------------------------------------------------------------------


async def test_a_sweep_preset_runs_as_a_grid_of_cells(tmp_path: Path) -> None:
    write_sweep_preset("grid")
    app = NSTApp(tiny_config(), outputs=tmp_path / "outputs", warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pick_preset(pilot, app, "grid.toml")
        assert app.session.sweep_table == {"content_layers": [[0], [2]]}
        note = str(app.query_one("#sweep-note").render())
        assert "Sweep: content_layers × 2" in note
        assert app.query_one("#sweep-note").display
        boxes = app.query_one(LayerToggles)
        assert boxes.box("content", 0).has_class("-swept")
        assert not boxes.box("style", 0).has_class("-swept")

        # The form is the base: an edited field applies to every cell, a swept one
        # stays swept whatever the form says.
        app.form.widget("iterations").value = "6"
        app.screen.set_focus(None)
        await pilot.press("5")  # content layer 5 on: swept, so no cell uses it
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)

        record = app.session.jobs[1].record
        assert record.status == "finished", record.reason
        state = app.session.jobs[1]
        assert [c.config.content_layers for c in state.job.cells] == [(0,), (2,)]
        assert all(c.config.iterations == 6 for c in state.job.cells)

        # A grid of two labelled previews, the first cell selected.
        assert grid_shown(app)
        shown = tiles(app)
        assert [t.border_title for t in shown] == LABELS
        assert all(t.image is not None for t in shown)
        assert [t.has_class("-selected") for t in shown] == [True, False]
        assert all(t.border_subtitle == "finished" for t in shown)

        # The loss pane holds the selected cell's logged points: 2, 4, 6.
        series = app.query_one(LossPanel).series
        assert series["total"] == [losses["total"] for _, losses in state.cells[0].rows]
        assert len(series["total"]) == 3
        assert len(app.query_one("#spark-total", Sparkline).data or []) == 3
        assert "content conv1_1" in str(app.query_one(LossPanel).border_title)

        # Arrow keys select the other cell; its sparklines replace the first's.
        app.query_one(SweepGrid).focus()
        await pilot.press("right")
        await pilot.pause()
        assert [t.has_class("-selected") for t in shown] == [False, True]
        series = app.query_one(LossPanel).series
        assert series["total"] == [losses["total"] for _, losses in state.cells[1].rows]
        assert series["content"] != [losses["content"] for _, losses in state.cells[0].rows]
        await pilot.press("left")
        assert state.selected == 0

        # One history row for the sweep; the status line counts cell-iterations.
        row = history_row(app, 1)
        assert row["status"] == "finished"
        assert row["changes"].startswith("sweep content_layers × 2")
        assert "iterations=6" in row["changes"] and "content_layers=" not in row["changes"]
        status = app.status.state
        assert (status.state, status.iteration, status.total) == ("finished", 12, 12)
        assert status.unit == "cell-it" and status.folder == record.folder

        # The sweep folder, as the CLI writes it.
        folder = record.folder
        assert folder is not None and folder.parent == tmp_path / "outputs"
        cells = ["00-content-conv1_1", "01-content-conv3_1"]
        assert sorted(p.name for p in folder.iterdir()) == sorted([*cells, *SWEEP_FILES])
        for name in cells:
            assert sorted(p.name for p in (folder / name).iterdir()) == sorted(FILES), name
        summary = json.loads((folder / "sweep.json").read_text())
        assert summary["status"] == "finished"
        assert summary["col_labels"] == LABELS


async def test_the_history_brings_a_sweep_back(tmp_path: Path) -> None:
    app = sweep_app(tmp_path, "grid", iterations=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert app.session.jobs[1].record.status == "finished"

        # Sweep off: ctrl+r runs the form once, in the single canvas.
        await pilot.press("ctrl+g")
        assert not app.session.sweep_on and "Sweep off" in str(
            app.query_one("#sweep-note").render()
        )
        assert not app.form.widget("size").has_class("-swept")
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert (
            app.session.jobs[2].record.sweep is None
            and app.session.jobs[2].record.status == "finished"
        )
        assert not grid_shown(app)
        assert app.pane.canvas.image is app.session.jobs[2].final

        # Highlighting the sweep's row shows its grid again; the run's, its image.
        app.history.move_cursor(row=0)
        await pilot.pause()
        assert grid_shown(app) and app.query_one(SweepGrid).state is app.session.jobs[1]
        await laid_out(pilot, app)  # a tile's title fits its width: known once laid out
        assert [t.border_title for t in tiles(app)] == LABELS
        assert len(app.query_one(LossPanel).series["total"]) == 1
        app.history.move_cursor(row=1)
        await pilot.pause()
        assert not grid_shown(app) and app.pane.canvas.image is app.session.jobs[2].final

        # `l` on the sweep's row loads its table again; `r` reruns it as a sweep.
        await pilot.press("ctrl+n")
        assert app.session.sweep_table is None and not app.query_one("#sweep-note").display
        app.history.focus()
        app.history.move_cursor(row=0)
        await pilot.press("l")
        await pilot.pause()
        assert app.session.sweep_table == {"content_layers": [[0], [2]]} and app.session.sweep_on
        await pilot.press("r")
        await wait_for_run(pilot, app)
        assert (
            app.session.jobs[3].record.sweep is not None
            and app.session.jobs[3].record.status == "finished"
        )
        assert grid_shown(app) and app.query_one(SweepGrid).state is app.session.jobs[3]


async def test_loading_a_plain_preset_drops_the_sweep(tmp_path: Path) -> None:
    presets.save(tiny_config(iterations=3), "plain")
    app = sweep_app(tmp_path, "grid")
    async with app.run_test(size=SIZE) as pilot:
        assert app.session.sweep_table is not None
        assert app.check_action("toggle_sweep", ()) is True
        await pick_preset(pilot, app, "plain.toml")
        assert app.session.sweep_table is None and app.session.preset_name == "plain"
        assert not app.query_one("#sweep-note").display
        assert app.check_action("toggle_sweep", ()) is False


async def test_a_bad_sweep_value_blocks_the_run_and_says_why(tmp_path: Path) -> None:
    app = sweep_app(tmp_path, "bad", sweep="size = [32, 8]")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs and app.active is None
        assert any("sweep.size" in n.message for n in app._notifications)


async def test_a_sweep_with_a_missing_image_is_blocked(tmp_path: Path) -> None:
    app = sweep_app(tmp_path, "missing", content_image=str(tmp_path / "nope.jpg"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs and "nope.jpg" in app.form.errors["content_image"]
        assert not (tmp_path / "outputs").exists()


async def test_a_sweep_that_cannot_start_is_marked_failed(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.jpg"  # past its header: only decoding finds it
    damaged.write_bytes(TUBINGEN.read_bytes()[:2000])
    app = sweep_app(tmp_path, "damaged", content_image=str(damaged))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        record = app.session.jobs[1].record
        assert record.status == "failed" and "damaged.jpg" in record.reason
        assert history_row(app, 1)["status"] == "failed"
        assert app.status.state.state == "failed"
        assert all(t.border_subtitle.startswith("failed") for t in tiles(app))
        assert not (tmp_path / "outputs").exists()  # nothing written before the inputs load


# ---- cancel and quit -------------------------------------------------------------------


async def test_cancel_stops_every_cell_and_keeps_what_they_made(tmp_path: Path) -> None:
    app = sweep_app(tmp_path, "long", iterations=5000, sav_freq=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        await pilot.press("escape")
        await wait_for_run(pilot, app, timeout=60)

        record = app.session.jobs[1].record
        assert record.status == "cancelled"
        assert history_row(app, 1)["status"] == "cancelled"
        assert app.status.state.state == "cancelled"
        assert all(t.border_subtitle.startswith("cancelled") for t in tiles(app))
        assert all(t.has_class("-stopped") for t in tiles(app))
        assert "cancelled" in str(app.query_one("#canvas-pane").border_title)

        folder = record.folder
        assert folder is not None and (folder / "sheet.png").is_file()
        assert json.loads((folder / "sweep.json").read_text())["status"] == "cancelled"
        for cell in json.loads((folder / "sweep.json").read_text())["cells"]:
            run = json.loads((folder / cell["folder"] / "run.json").read_text())
            assert run["status"] == "cancelled" and 0 < run["iterations_done"] < 5000


async def test_quit_during_a_sweep_cancels_and_saves_first(tmp_path: Path) -> None:
    app = sweep_app(tmp_path, "long", iterations=5000, sav_freq=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        await pilot.press("ctrl+q")
        waited = 0.0
        while app.is_running and waited < 60:
            await pilot.pause(0.05)
            waited += 0.05
    assert app.return_code == 0
    record = app.session.jobs[1].record
    assert record.status == "cancelled"
    assert (record.folder / "sweep.json").is_file()  # type: ignore[operator]


# ---- keys, coalescing ---------------------------------------------------------------------


def test_the_sweep_keys_are_in_the_help_text() -> None:
    for key in ("ctrl+g", "tab", "shift+tab"):
        assert f"`{key}`" in HELP_TEXT, key
    for arrow in ("←", "→", "↑", "↓"):
        assert f"`{arrow}`" in HELP_TEXT, arrow
    assert {b.key for b in SweepGrid.BINDINGS} == {  # type: ignore[union-attr]
        "left",
        "right",
        "up",
        "down",
        "tab",
        "shift+tab",
        "enter,v",  # the selected cell in the viewer
    }


def test_narrow_tiles_drop_the_words_every_column_shares() -> None:
    from nst_tui.tui.job_state import short_labels

    assert short_labels(("content conv1_1", "content conv2_1")) == ("conv1_1", "conv2_1")
    assert short_labels(("reconstruct", "visualize content")) == (
        "reconstruct",
        "visualize content",
    )
    assert short_labels(("init noise",)) == ("init noise",)  # one column: nothing to share


def test_sweep_news_merges_every_cell() -> None:
    older = JobNews({0: CellNews([(1, {"total": 3.0})], 1, "old"), 1: CellNews([], 0)}, 1, 8, 1.0)
    newer = JobNews({0: CellNews([(2, {"total": 2.0})], 2), 1: CellNews([], 1, "new", "failed")})
    newer.completed, newer.rate = 3, 2.0
    both = merged(older, newer)
    assert [it for it, _ in both.cells[0].rows] == [1, 2]
    assert both.cells[0].preview == "old" and both.cells[0].iteration == 2
    assert (both.cells[1].preview, both.cells[1].status) == ("new", "failed")
    assert (both.completed, both.total, both.rate) == (3, 8, 2.0)  # total: newer said nothing
    assert [it for it, _ in older.cells[0].rows] == [1]  # neither was changed


def test_the_relay_posts_a_batch_round_at_once() -> None:
    from nst_tui.engine.events import Frame, Progress
    from nst_tui.job.events import BatchStarted, CellEvent
    from nst_tui.job.plan import expand
    from nst_tui.tui.relay import JobRelay

    sweep = expand(tiny_config(iterations=4, sav_freq=2), {"content_layers": [[0], [2]]})
    posted: list[object] = []
    relay = JobRelay(eager_dashboard(posted), 1, sweep, Pace(fastest=0))  # rounds only
    image = gradient(32, 24, 0)
    relay(BatchStarted(0, (0, 1), True))
    for step in (2, 4):
        for cell in (0, 1):
            relay(CellEvent(cell, Progress(step, 4, {"total": float(step)}, 1.0, 1.0)))
            relay(CellEvent(cell, Frame(step, image)))
            if cell == 0:
                relay.poster.drain()
                assert not posted, "posted before its batch-mate had logged this step"
        relay.poster.drain()  # the tiles are made on the relay's own thread
        message = posted.pop()
        assert isinstance(message, JobNews) and not posted
        assert sorted(message.cells) == [0, 1]
        assert all(u.rows == [(step, {"total": float(step)})] for u in message.cells.values())
        assert all(u.preview is not None for u in message.cells.values())
        assert message.completed == 2 * step and message.total == 8
    relay(CellEvent(0, Finished("cancelled", "", 4, 1.0, 1.0, {}, image)))
    relay.poster.drain()
    message = posted.pop()
    assert isinstance(message, JobNews) and message.cells[0].status == "cancelled"


# ---- snapshot -------------------------------------------------------------------------------


def gradient(w: int, h: int, shift: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, shift)], -1).astype(np.uint8)


async def replay_finished_sweep(pilot: Pilot) -> None:
    """A 2x2 sweep replayed from fixed messages: nothing computed, nothing timed."""
    app = pilot.app
    assert isinstance(app, NSTApp)
    for _ in range(200):
        if not any(w.is_running for w in app.workers):
            break
        await pilot.pause(0.05)
    app.job_worker = lambda *a, **k: None  # type: ignore[method-assign]
    for field in app.query(Input):
        field.cursor_blink = False
    await pilot.press("ctrl+r")
    await pilot.pause()
    state = app.session.jobs[1]
    app.post_message(JobBegan(1, Path("outputs/20260101-000000-grid"), 2, "cpu", "vgg16-caffe"))
    updates = {}
    for cell in state.job.cells:
        rows = [
            (i, {"total": 10.0 ** (9 - i / 2) * (cell.index + 1), "content": 4e6 - i * 1e5,
                 "style": 9e8 / i, "tv": 0.3})
            for i in range(2, 11, 2)
        ]  # fmt: skip
        updates[cell.index] = CellNews(rows, 10)
    box = NewsBox(Pace())
    box.put(JobNews(updates, 40, 40, 16.0))
    app.post_message(NewsReady(1, box))
    await pilot.pause()
    outcomes = []
    for cell in state.job.cells:
        status = "cancelled" if cell.index == 3 else "finished"
        image = gradient(32, 24, 60 * cell.index)
        losses = state.cells[cell.index].rows[-1][1]
        fin = Finished(status, "", 10 if status == "finished" else 6, 1.0, 10.0, losses, image)
        outcomes.append(CellResult(cell, Path("outputs/20260101-000000-grid"), fin))
    folder = Path("outputs/20260101-000000-grid")
    result = JobResult(folder, "cancelled", tuple(outcomes), 2.5, 36, 14.4, "cpu", "vgg16-caffe")
    app._job_ended(result)
    app.screen.set_focus(None)
    await pilot.pause()


@pytest.mark.usefixtures("fixed_device")
class TestSweepSnapshot:
    def test_finished_sweep(self, snap_compare) -> None:
        base = snapshot_config(iterations=10, sav_freq=2)
        table = {"optimizer": ["adam", "lbfgs"], "content_layers": [[0], [3]]}
        app = NSTApp(base, preset_name="grid", outputs=Path("outputs"), warm_up=False, sweep=table)
        lasting_toasts(app)
        assert snap_compare(app, terminal_size=SIZE, run_before=replay_finished_sweep)


async def test_saving_with_a_sweep_loaded_keeps_the_table_unless_it_is_off(tmp_path: Path) -> None:
    table = {"content_layers": [[0], [3]], "lr": [0.01, 0.1]}
    app = NSTApp(tiny_config(), outputs=tmp_path / "outputs", warm_up=False, sweep=table)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "[sweep] table over content_layers, lr" in str(
            app.screen.query_one(".modal-hint").render()
        )
        await pilot.press(*"grid", "enter")
        await pilot.pause()
        saved = presets.load("grid")
        assert saved.config == tiny_config() and saved.sweep == table

        await pilot.press("ctrl+g")  # sweep off: ctrl+s saves the form alone
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"single", "enter")
        await pilot.pause()
        assert presets.load("single").sweep == {}


async def test_f2_types_a_sweep_table_checked_over_the_form(tmp_path: Path) -> None:
    from nst_tui.tui.screens.sweep_editor import SweepEditor

    app = NSTApp(tiny_config(), outputs=tmp_path / "outputs", warm_up=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, SweepEditor)
        line = app.screen.query_one("#sweep-line", Input)
        assert line.value == ""

        async def submit(text: str) -> str:
            line.value = text
            line.focus()
            await pilot.press("enter")
            await pilot.pause()
            if isinstance(app.screen, SweepEditor):
                return str(app.screen.query_one("#sweep-error").render())
            return ""

        assert "unknown field" in await submit("lrr = [0.1]")
        assert "sweep.lr" in await submit("lr = [0.1, -1.0]")  # a value the config refuses
        assert "not a list" in await submit("lr = [0.1")
        assert await submit("lr = [0.01, 0.1], content_layers = [[0], [3]]") == ""
        assert app.session.sweep_table == {"lr": [0.01, 0.1], "content_layers": [[0], [3]]}
        assert app.session.sweep_on

        await pilot.press("f2")  # opens with the table as it is; empty removes it
        await pilot.pause()
        line = app.screen.query_one("#sweep-line", Input)
        assert line.value == "lr = [0.01, 0.1], content_layers = [[0], [3]]"
        assert await submit("") == ""
        assert app.session.sweep_table is None and not app.session.sweep_on
