"""The viewer from the dashboard: f4 on the canvas (running and finished), f5 at the
first frame, `v` on the run history, `enter` on a sweep's cell; tiny real runs."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_config
from PIL import Image
from test_dashboard import SIZE, make_app, wait_for_run, wait_until_running
from test_dashboard_sweep import sweep_app, write_sweep_preset
from test_viewer import readout, settled
from textual.widgets import Label

from nst_tui.tui.screens.viewer import ViewerScreen


async def test_f4_views_the_finished_canvas_and_f5_its_first_frame(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=10, sav_freq=5))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert not isinstance(app.screen, ViewerScreen)  # nothing to view yet: said
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        await pilot.press("f4")
        screen = await settled(pilot)
        assert "final" in readout(screen) and "2 frames" in readout(screen)
        folder = app.session.jobs[1].record.folder
        assert folder is not None and screen.source.folder == folder
        with Image.open(folder / "final.png") as final:
            assert screen.picture is not None and screen.picture.full == final.size
        await pilot.press("right_square_bracket")
        screen = await settled(pilot)
        assert "frame 1/2 · iteration 5" in readout(screen)
        await pilot.press("f4", "ctrl+r")  # the dashboard's keys do not act in the viewer
        await pilot.pause()
        assert app.active is None and len(app.session.jobs) == 1
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ViewerScreen)
        await pilot.press("f5")
        screen = await settled(pilot)
        assert "frame 1/2 · iteration 5" in readout(screen)
        await pilot.press("escape")


async def test_f4_during_a_run_follows_its_newest_frame(tmp_path: Path) -> None:
    # Until cancelled: a faster machine finished 400 iterations while the test watched.
    app = make_app(tmp_path, tiny_config(iterations=100_000, sav_freq=5))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        await pilot.pause(0.5)
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ViewerScreen)
        assert screen.source.is_running() and screen.store is not None
        seen = set()
        for _ in range(1200):  # its frames, as the run writes them (not settled: it follows)
            await pilot.pause(0.05)
            if screen.picture is not None and "(newest)" in screen.picture.what:
                seen.add(screen.picture.what)
                if len(seen) >= 2:
                    break
        assert len(seen) >= 2, seen  # a newer frame replaced the first one seen
        await pilot.press("escape")  # closes the viewer; the run goes on
        await pilot.pause()
        assert app.active is not None
        await pilot.press("escape")  # now it cancels the run
        await wait_for_run(pilot, app)


async def test_a_run_that_ends_while_the_viewer_follows_it_shows_its_final_image(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, tiny_config(iterations=100_000, sav_freq=5))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ViewerScreen) and screen.source.is_running()
        for _ in range(600):  # a frame or two followed
            await pilot.pause(0.05)
            if screen.picture is not None and "(newest)" in screen.picture.what:
                break
        app.action_cancel_run()  # the run ends under the open viewer (its final image, GIF)
        for _ in range(1200):
            await pilot.pause(0.05)
            if app.active is None and screen.picture is not None and screen.picture.what == "final":
                break
        assert app.active is None, "the run did not end"
        assert screen.picture is not None and screen.picture.what == "final", screen.picture
        assert app.screen is screen  # still open, on the ended run's final image
        title = str(screen.query_one("#viewer-title", Label).render())
        assert title.endswith("· cancelled"), title  # no longer "running"
        await pilot.press("left_square_bracket")  # its frames, now from the GIF
        await pilot.pause(0.3)
        assert "frame " in readout(screen) and "iteration " in readout(screen), readout(screen)


async def test_v_in_the_history_views_the_highlighted_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=4, sav_freq=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        await pilot.press("ctrl+t", "v")
        screen = await settled(pilot)
        assert screen.source.folder == app.session.jobs[1].record.folder
        assert "Run 1" in str(screen.query_one("#viewer-title").render())


async def test_enter_on_a_sweep_s_cell_views_that_cell(tmp_path: Path) -> None:
    write_sweep_preset("grid")
    app = sweep_app(tmp_path, "grid")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        app.pane.grid.focus()
        await pilot.press("right", "enter")
        screen = await settled(pilot)
        job = app.session.jobs[1]
        assert screen.source.folder == job.cell_folder(1)
        assert screen.source.folder is not None and screen.source.folder.parent == job.folder
        assert "cell 1" in str(screen.query_one("#viewer-title").render())
        assert screen.picture is not None and screen.picture.what == "final"
