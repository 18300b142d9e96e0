"""The headless bar fits the terminal by dropping its least useful fields whole, never by
cutting one ("80/3...", "ETA 0:00...")."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from nst_tui.cli_progress import ProgressView, clock
from nst_tui.engine.events import Finished, Progress, Status


def rendered(width: int, *extra: object) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    view = ProgressView(console, 3000)
    view(Progress(80, 3000, {"total": 83_840_000.0}, 16.1, 5.0, 0.0121, None))
    for event in extra:
        view(event)  # type: ignore[arg-type]
    console.print(view.progress.get_renderable())
    return console.export_text().splitlines()


PARTS = (Status("download: vgg16.pth", 0.4), Status("tiles: pass 2 of 2, tile 37 of 176", 0.2))


@pytest.mark.parametrize("width", [40, 60, 80, 100, 120, 200])
@pytest.mark.parametrize("extra", [(), PARTS[:1], PARTS])
def test_every_line_fits_and_no_field_is_cut(width: int, extra: tuple[object, ...]) -> None:
    lines = rendered(width, *extra)
    assert lines and all(len(line) <= width for line in lines), lines
    assert not any("…" in line or "..." in line for line in lines), lines
    assert "80/3000" in lines[0]  # the count and the ETA always stay
    assert "ETA " in lines[0] and ("ETA -:--:--" in lines[0] or "ETA 0:" in lines[0])


def test_fields_are_dropped_least_useful_first() -> None:
    wide, eighty, sixty = rendered(120)[0], rendered(80)[0], rendered(60)[0]
    assert all(f in wide for f in ("16.1 it/s", "12.1 GFLOP/s", "ETA", "0:00:", "loss 8.384e+07"))
    assert "GFLOP/s" not in eighty and "loss 8.384e+07" in eighty and "16.1 it/s" in eighty
    assert "loss" not in sixty and "16.1 it/s" in sixty


def test_a_finished_bar_still_fits() -> None:
    lines = rendered(80, Finished("finished", "", 3000, 10.0, 300.0, {}, None))
    assert lines[0].startswith("finished") and len(lines[0]) <= 80


def test_clock() -> None:
    assert (clock(None), clock(0), clock(3725.9)) == ("-:--:--", "0:00:00", "1:02:05")


def test_a_slow_part_has_its_own_bar_under_the_runs() -> None:
    # A download, a pass in tiles: each its own bar, named by its label, updated in place.
    lines = rendered(100, *PARTS, Status("tiles: pass 2 of 2, tile 38 of 176", 0.21))
    assert len(lines) == 3 and "80/3000" in lines[0]
    assert lines[1].startswith("download") and "vgg16.pth" in lines[1]
    assert lines[2].startswith("tiles") and "pass 2 of 2, tile 38 of 176" in lines[2]
    assert "it/s" not in lines[2] and "loss" not in lines[2]  # a part has no rate or loss


def test_a_parts_next_pass_starts_its_bar_and_eta_again() -> None:
    console = Console(width=100, record=True, file=io.StringIO())
    view = ProgressView(console, 10)
    for k in range(1, 6):  # the content's pass, nearly done, at 0.2 per tick
        view(Status(f"targets: content, tile {k} of 5", k / 5 - 0.01))
    view(Status("targets: style, tile 1 of 5", 0.0))  # the style's pass begins
    (task,) = [t for t in view.progress.tasks if t.description == "targets"]
    assert task.completed == 0.0 and task.fields["detail"] == "style, tile 1 of 5"
    assert task.time_remaining is None  # no speed from the content's pass carried over
