"""The preview's half blocks are rich-pixels' own cells, only made faster, and the widget
places them as its content-align says."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from rich.segment import Segment
from rich_pixels import Pixels
from textual.app import App, ComposeResult

from nst_tui.tui.widgets.image_view import LOWER_HALF, ImageView, half_block_rows

Cell = tuple[str, object, object]


def cells(segments: list[Segment]) -> list[Cell]:
    return [
        (s.text, s.style and s.style.color.triplet, s.style and s.style.bgcolor.triplet)
        for s in segments
    ]


def rich_pixels_cells(image: Image.Image) -> list[Cell]:
    console = Console(width=400, color_system="truecolor", file=io.StringIO())
    return cells(list(console.render(Pixels.from_image(image))))


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def drawn(image: Image.Image) -> list[Cell]:
    return [cell for row in half_block_rows(image) for cell in [*cells(row), ("\n", None, None)]]


@pytest.mark.parametrize("size", [(1, 2), (7, 4), (110, 84)])
def test_half_blocks_draw_what_rich_pixels_draws(size: tuple[int, int]) -> None:
    image = random_image(*size)
    assert drawn(image) == rich_pixels_cells(image)


def test_an_odd_last_row_fills_its_cell() -> None:
    image = random_image(7, 5)
    rows = np.asarray(image)
    padded = Image.fromarray(np.concatenate([rows, rows[-1:]]))
    assert drawn(image) == rich_pixels_cells(padded)


class OneImage(App[None]):
    CSS = "ImageView { width: 20; height: 8; content-align: center middle; }"

    def compose(self) -> ComposeResult:
        yield ImageView("nothing yet", id="view")


async def test_the_image_is_fitted_and_centred() -> None:
    app = OneImage()
    async with app.run_test(size=(30, 10)) as pilot:
        view = app.query_one(ImageView)
        assert any("nothing yet" in view.render_line(y).text for y in range(8))
        # 8 x 8 pixels in 20 x 8 cells: enlarged to 16 x 16 pixels (16 cells x 8 lines),
        # two blank cells either side.
        image = random_image(8, 8, seed=1)
        view.image = image
        await pilot.pause()
        lines = [view.render_line(y) for y in range(8)]
        assert all(line.cell_length == 20 for line in lines)
        assert all(line.text == "  " + LOWER_HALF * 16 + "  " for line in lines)
        # Each cell is a 2 x 2 block of the source: top pixel as background, bottom as glyph.
        first = next(s for s in lines[0] if s.text == LOWER_HALF)
        assert first.style.bgcolor.triplet == tuple(np.asarray(image)[0, 0])
        # A wide image: full width, centred vertically.
        view.image = random_image(40, 8, seed=2)
        await pilot.pause()
        texts = [view.render_line(y).text for y in range(8)]
        assert texts[:3] == [" " * 20] * 3 and texts[-3:] == [" " * 20] * 3
        assert texts[3] == texts[4] == LOWER_HALF * 20


def test_a_terminal_without_true_colour_is_told_how_to_get_it() -> None:
    from nst_tui.tui.widgets.image_view import colour_hint

    assert colour_hint("truecolor", {}) is None
    plain = colour_hint("256", {})
    assert plain is not None and "256 colours" in plain and "COLORTERM=truecolor" in plain
    assert "tmux" not in plain
    in_tmux = colour_hint("256", {"TMUX": "/tmp/tmux-0/default,1,0"})
    assert in_tmux is not None and "terminal-features" in in_tmux
    assert "16 colours" in (colour_hint("standard", {}) or "")
