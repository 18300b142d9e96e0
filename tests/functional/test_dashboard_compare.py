"""Comparing two runs of the history: `m` marks one, `c` opens them side by side."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_config
from test_dashboard import make_app, wait_for_run
from textual.widgets import DataTable

from nst_tui.tui.app import NSTApp
from nst_tui.tui.screens.compare_screen import CompareScreen
from nst_tui.tui.widgets.image_view import ImageView
from nst_tui.tui.widgets.loss_overlay import BARS, LossOverlay, bar_line, shared_scale
from nst_tui.tui.widgets.loss_panel import TERMS

SIZE = (160, 48)


def record_notifications(app: NSTApp) -> list[str]:
    """Every message the app notifies from now on (shown ones expire)."""
    said: list[str] = []
    notify = app.notify

    def spy(message: str, **kwargs: object) -> None:
        said.append(message)
        notify(message, **kwargs)  # type: ignore[arg-type]

    app.notify = spy  # type: ignore[method-assign]
    return said


async def test_mark_two_runs_and_compare_them(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=6, sav_freq=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        app.form.load(tiny_config(iterations=4, sav_freq=2, alpha=20.0, init="content"))
        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        assert [j.record.status for j in app.session.jobs.values()] == ["finished", "finished"]

        await pilot.press("tab", "ctrl+t")  # from a form field straight to the runs list
        assert app.focused is app.history
        await pilot.press("up", "m", "down", "c")  # mark run 1, highlight run 2
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert str(app.history.get_row("1")[0]) == "1 ◆"

        table = screen.query_one("#compare-diff", DataTable)
        rows = {
            str(table.get_row(k)[0]): [str(c) for c in table.get_row(k)[1:]] for k in table.rows
        }
        assert rows == {
            "iterations": ["6", "4"],
            "alpha": ["5.0", "20.0"],
            "init": ['"noise"', '"content"'],
        }
        assert "3 differing parameters" in str(screen.query_one(".modal-title").render())

        views = list(screen.query(".compare-side ImageView").results(ImageView))
        assert len(views) == 2 and all(v.image is not None for v in views)
        assert [v.image for v in views] == [app.session.jobs[1].final, app.session.jobs[2].final]

        overlay = screen.query_one(LossOverlay)
        for series in overlay.series:
            assert all(len(series[t]) >= 2 for t in TERMS)  # every logged point of both runs
        a, b = overlay.series
        assert [it for it, _ in a["total"]] == [2, 4, 6] and [it for it, _ in b["total"]] == [2, 4]
        drawn = overlay.lines(60)
        assert len(drawn) == 2 * len(TERMS)
        assert all(any(ch in BARS for ch in bars) for _, bars, _ in drawn)

        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert app.status.state.state == "finished"  # escape closed the screen, nothing else


async def test_ctrl_t_goes_to_the_runs_and_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t")  # nothing focused at start
        assert app.focused is app.history
        await pilot.press("ctrl+t")
        assert app.focused is not None and app.form in app.focused.ancestors
        await pilot.press("tab", "tab", "ctrl+t")
        assert app.focused is app.history


async def test_compare_without_two_runs_notifies(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    said = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        app.history.focus()
        await pilot.press("c")  # no run at all
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert any("Mark a run" in text for text in said)

        await pilot.press("ctrl+r")
        await wait_for_run(pilot, app)
        app.history.focus()
        await pilot.press("m", "c")  # the marked run is the highlighted one: one run
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)
        assert len([t for t in said if "Mark a run" in t]) == 2
        await pilot.press("m")  # unmarks
        assert app.history.marked == []
        assert str(app.history.get_row("1")[0]) == "1"


def test_a_shorter_run_stops_early_on_the_shared_scale() -> None:
    long = [(i, 10.0 ** (6 - i / 4)) for i in range(2, 21, 2)]
    short = [(5, 1e4), (10, 1e3)]
    scale = shared_scale([[v for _, v in long], [v for _, v in short]])
    assert scale[2]  # five decades between them: log10
    line = bar_line(short, 20, 20, scale)
    assert line[:4] == "    " and line[10:] == " " * 10  # nothing before its first point or after
    assert line[4] == line[8] and line[9] < line[4]  # held, then lower
    assert bar_line(long, 20, 20, scale)[-1] == BARS[0]  # the lowest value of both
