"""Real pixels where the terminal has them, half blocks otherwise, and the extra's absence
changing nothing: the half-block path is ImageView's, line for line."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image
from textual.app import App, ComposeResult
from textual.geometry import Region

from nst_tui.tui import graphics, images
from nst_tui.tui.graphics import Graphics
from nst_tui.tui.widgets.image_view import ImageView
from nst_tui.tui.widgets.pixels import PixelLayer, PixelView

SIXEL = Graphics("sixel", "sixel (test)", (9, 18), None)


def photo(w: int = 120, h: int = 80, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def sixel_terminal() -> Iterator[None]:
    pytest.importorskip("textual_image")
    graphics.use(SIXEL)
    yield
    graphics.use(graphics.BLOCKS)
    images._wanted.clear()  # the sizes real pixels asked the previews for


class Two(App[None]):
    CSS = "ImageView { width: 40; height: 12; content-align: center middle; }"

    def compose(self) -> ComposeResult:
        yield PixelView("none", id="pixels")
        yield ImageView("none", id="blocks")


async def wait_encoded(view: PixelView, n: int, pilot) -> None:  # type: ignore[no-untyped-def]
    for _ in range(400):
        if view.encodings >= n and not view._busy:
            return
        await pilot.pause(0.02)
    raise AssertionError("not encoded")


async def test_with_half_blocks_a_pixel_view_draws_what_image_view_draws() -> None:
    assert graphics.current().kind == "blocks"
    app = Two()
    async with app.run_test(size=(80, 30)) as pilot:
        pixels, blocks = app.query_one("#pixels", PixelView), app.query_one("#blocks", ImageView)
        assert not pixels.pixels and not list(pixels.query(PixelLayer))  # no layer at all
        for image in (photo(), photo(30, 200, 1), None):
            pixels.image = blocks.image = image
            await pilot.pause()
            for y in range(12):
                assert list(pixels.render_line(y)) == list(blocks.render_line(y))


async def test_without_the_extra_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The import fails as it does where textual-image is not installed.
    for name in [m for m in sys.modules if m.startswith("textual_image")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual_image", None)

    class Tty:
        def isatty(self) -> bool:
            return True

    chosen = graphics.detect("auto", {}, Tty())  # type: ignore[arg-type]
    assert chosen.kind == "blocks" and "nst-tui[images]" in chosen.reason
    graphics.use(chosen)
    try:
        await test_with_half_blocks_a_pixel_view_draws_what_image_view_draws()
    finally:
        graphics.use(graphics.BLOCKS)
    assert sys.modules["textual_image"] is None  # nothing imported it behind our back


async def test_in_sixel_the_picture_is_one_sixel_in_whole_cells(sixel_terminal: None) -> None:
    app = Two()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one("#pixels", PixelView)
        assert view.pixels
        view.image = photo(120, 80)
        await wait_encoded(view, 1, pilot)
        await pilot.pause()
        layer = view.query_one(PixelLayer)
        assert (
            layer.sixel is not None
            and layer.sixel.startswith("\x1bP")
            and layer.sixel.endswith("\x1b\\")
        )
        # 40 x 12 cells of 9 x 18 pixels hold 360 x 216: 120 x 80 fits as 324 x 216, 36 cells.
        assert (layer.size.width, layer.size.height) == (36, 12)
        assert '"1;1;324;216' in layer.sixel  # the raster: whole cells
        assert layer.written >= 1  # the dashboard's own paint wrote it
        layer.fresh = True  # as a new picture is
        lines = layer.render_lines(Region(0, 0, 36, 12))
        # Each line only moves the cursor over the picture (spaces would clear it); the last
        # one writes the picture, once, at the layer's corner.
        assert len(lines) == 12
        assert all("".join(s.text for s in line) == "\x1b[36C" for line in lines[:-1])
        last = "".join(s.text for s in lines[-1])
        assert layer.sixel in last and last.startswith("\x1b[")
        # A repaint of the widget around it does not send the unchanged picture again.
        again = layer.render_lines(Region(0, 0, 36, 12))
        assert all(layer.sixel not in "".join(s.text for s in line) for line in again)
        # A part of it repainted (something was drawn over it) does.
        part = layer.render_lines(Region(0, 4, 36, 3))
        assert layer.sixel in "".join(s.text for s in part[-1])
        # The widget's own lines under the layer are blank, not half blocks.
        assert "▄" not in "".join(s.text for s in view.render_line(5))


async def test_in_sixel_live_updates_are_paced_newest_first(sixel_terminal: None) -> None:
    app = Two()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one("#pixels", PixelView)
        last = None
        for seed in range(30):  # a run's previews at 20 a second
            last = photo(120, 80, seed)
            view.image = last
            await pilot.pause(0.05)
        await wait_encoded(view, 1, pilot)
        for _ in range(200):
            await pilot.pause(0.05)
            if not view._busy and not view._dirty:
                break
        assert 1 <= view.encodings < 30  # paced, not one per preview
        assert view._shown == view._serial  # and the newest one is what shows


async def test_behind_a_dialog_the_pixels_give_way_to_blank(sixel_terminal: None) -> None:
    from textual.screen import ModalScreen

    app = Two()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one("#pixels", PixelView)
        view.image = photo()
        await wait_encoded(view, 1, pilot)
        app.push_screen(ModalScreen())
        await pilot.pause()
        layer = view.query_one(PixelLayer)
        lines = layer.render_lines(Region(0, 0, layer.size.width, layer.size.height))
        assert all(set("".join(s.text for s in line)) <= {" "} for line in lines)
        assert all(line.cell_length == layer.size.width for line in lines)


async def test_a_picture_that_cannot_be_encoded_is_said(
    sixel_terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nst_tui.tui.widgets.pixels as pixels

    def broken(job: object) -> str:
        raise ValueError("no sixel today")

    monkeypatch.setattr(pixels, "encode", broken)
    app = Two()
    async with app.run_test(size=(80, 30)) as pilot:
        view = app.query_one("#pixels", PixelView)
        view.image = photo()
        await wait_encoded(view, 1, pilot)
        await pilot.pause()
        assert any("no sixel today" in str(n.message) for n in app._notifications)
        assert not view.pixels and "▄" in "".join(s.text for s in view.render_line(5))


def test_colour_registers_are_defined_before_any_pixel() -> None:
    # xterm (a VT340's shared palette) recolours pixels drawn before a register's
    # definition: every definition goes up front, the drawing itself unchanged.
    import re

    from nst_tui.tui.widgets.pixels import hoist_registers

    made = '\x1bP0;0;0q"1;1;4;6#1;2;10;20;30!4~#2;2;0;0;0$#1~-#2;2;0;0;0#1~~\x1b\\'
    assert hoist_registers(made) == (
        '\x1bP0;0;0q"1;1;4;6#1;2;10;20;30#2;2;0;0;0#2;2;0;0;0#1!4~#2$#1~-#2#1~~\x1b\\'
    )
    assert hoist_registers("no sixel") == "no sixel"
    pytest.importorskip("textual_image")
    from textual_image._sixel import image_to_sixels

    sixel = hoist_registers(image_to_sixels(photo(64, 40)))
    head = re.match(r'\x1bP[0-9;]*q"\d+;\d+;\d+;\d+((?:#\d+;2;\d+;\d+;\d+)*)', sixel)
    assert head is not None and head.group(1)
    assert not re.search(r"#\d+;2;", sixel[head.end() :])  # none left among the pixels


async def test_the_dashboard_in_sixel_draws_every_picture_in_pixels(
    sixel_terminal: None,
) -> None:
    # The thumbnails, a sweep's tiles (a replayed 2x2 sweep, nothing computed), and the
    # previews shrunk to what a tile shows rather than to the half blocks' 96 px.
    from pathlib import Path

    from conftest import snapshot_config
    from test_dashboard_sweep import SIZE, replay_finished_sweep

    from nst_tui.tui.app import NSTApp
    from nst_tui.tui.images import TILE_PX, wanted_px
    from nst_tui.tui.widgets.sweep_grid import SweepTile

    table = {"optimizer": ["adam", "lbfgs"], "content_layers": [[0], [3]]}
    base = snapshot_config(iterations=10, sav_freq=2)
    app = NSTApp(base, preset_name="grid", outputs=Path("outputs"), warm_up=False, sweep=table)
    async with app.run_test(size=SIZE) as pilot:
        await replay_finished_sweep(pilot)
        views = [
            *app.query(SweepTile),
            *(app.query_one(f"#thumb-{w}", PixelView) for w in ("content", "style")),
        ]
        assert len(views) == 6 and all(v.pixels for v in views)
        for view in views:
            if view.display and view.image is not None:
                await wait_encoded(view, 1, pilot)
        tiles = list(app.query(SweepTile))
        assert all(t.query_one(PixelLayer).sixel for t in tiles)
        assert wanted_px("tile") > TILE_PX  # a tile shows more pixels than half blocks do
