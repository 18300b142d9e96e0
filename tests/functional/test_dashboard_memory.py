"""The memory plan in the dashboard: a line under the size says what a run will need against
its budget, and changes as the fields do; a run that cannot fit even in tiles is blocked
like an invalid value, the reason under max_memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dashboard import SIZE, make_app, type_into
from textual.widgets import Static

from nst_tui.tui.app import NSTApp


def plan_line(app: NSTApp) -> str:
    return str(app.query_one("#memory-plan", Static).render())


@pytest.mark.usefixtures("fixed_device")  # its own RSS grows in a long test session
async def test_the_plan_is_shown_and_follows_the_size(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        small = plan_line(app)
        assert small.startswith("memory ≈") and "free) on cpu · fits" in small

        await type_into(pilot, app, "size", "1024")
        large = plan_line(app)
        assert large != small and large.endswith("on cpu · fits")

        await type_into(pilot, app, "max_memory", "4GiB")
        await type_into(pilot, app, "size", "3072")
        tiled = plan_line(app)
        assert "of 4.0 GiB budget on cpu · " in tiled and " tiles of " in tiled
        assert app.form.errors == {}
        assert not app.query_one("#memory-plan").has_class("-refused")


async def test_a_run_that_cannot_fit_even_in_tiles_is_blocked(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "max_memory", "200MiB")
        await pilot.pause()
        line = plan_line(app)
        assert "of 200 MiB budget on cpu · does not fit: size 32 needs" in line
        assert app.query_one("#memory-plan").has_class("-refused")
        error = str(app.query_one("#error-max_memory").render())
        assert error.startswith("max_memory 200MiB (200 MiB budget on cpu): size 32 needs ")
        assert app.form.widget("max_memory").has_class("-invalid")

        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs and app.active is None  # blocked, as a bad value is
        assert app.focused is app.form.widget("max_memory")

        await type_into(pilot, app, "max_memory", "6 XB")
        assert "'6 XB' is not a size" in str(app.query_one("#error-max_memory").render())
        assert plan_line(app) == ""  # no valid values to plan

        await type_into(pilot, app, "max_memory", "auto")
        assert app.form.errors == {}
        assert plan_line(app).endswith("on cpu · fits")
