"""The preview's half blocks are rich-pixels' own cells, only made faster."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from rich_pixels import Pixels

from nst_tui.tui.widgets.image_view import half_blocks


def cells(renderable: Pixels) -> list[tuple[str, object, object]]:
    console = Console(width=400, color_system="truecolor", file=io.StringIO())
    return [
        (s.text, s.style and s.style.color.triplet, s.style and s.style.bgcolor.triplet)
        for s in console.render(renderable)
    ]


@pytest.mark.parametrize("size", [(1, 2), (7, 4), (110, 84)])
def test_half_blocks_draw_what_rich_pixels_draws(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    assert cells(half_blocks(image)) == cells(Pixels.from_image(image))
