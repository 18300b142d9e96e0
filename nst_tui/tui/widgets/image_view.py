"""Images drawn with half blocks (as rich-pixels draws them): one cell shows 1x2 pixels.

The image is fitted to the widget's content area with its aspect ratio kept,
placed by the widget's `content-align`, and its lines are cached until the image
or the size changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from PIL import Image
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from nst_tui.text import visible
from nst_tui.tui.images import fit

LOWER_HALF = "\u2584"  # as rich-pixels draws: glyph = lower pixel, background = upper


def _color(rgb: int) -> Color:
    """rich's Color.from_rgb for 0xRRGGBB, without its detours (two per cell, per frame)."""
    triplet = ColorTriplet(rgb >> 16, (rgb >> 8) & 255, rgb & 255)
    return Color(f"#{rgb:06x}", ColorType.TRUECOLOR, triplet=triplet)


@lru_cache(maxsize=1 << 16)
def _cell_style(top: int, bottom: int) -> Style:
    """One style per colour pair (0xRRGGBB each), made once: previews share colours."""
    return Style.from_color(_color(bottom), _color(top))


def half_block_rows(image: Image.Image) -> list[list[Segment]]:
    """The image as rich-pixels' half-block cells, a list of segments per line of cells.

    Built here rather than with rich-pixels' Pixels.from_image, which parses a style
    string per cell, and drawn as strips (no rich rendering pass, which adds the
    widget's style to every cell again): a run redraws its preview every few frames
    on the UI thread while the optimizer's thread waits for the GIL.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if packed.shape[0] % 2:  # the last row fills its cell (the widget only sends even heights)
        packed = np.vstack([packed, packed[-1:]])
    return [
        [Segment(LOWER_HALF, _cell_style(t, b)) for t, b in zip(top, bottom, strict=True)]
        for top, bottom in zip(packed[0::2].tolist(), packed[1::2].tolist(), strict=True)
    ]


class ImageView(Widget):
    """A PIL image fitted to the widget, or a placeholder line."""

    image: reactive[Image.Image | None] = reactive(None, always_update=True)

    def __init__(
        self, placeholder: str = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.placeholder = placeholder
        # (image, (width, height, align), lines): the image itself, not its id, which can be
        # reused once the image it named is gone.
        self._cache: tuple[Image.Image, tuple[object, ...], list[Strip]] | None = None

    def render(self) -> RenderableType:
        """The placeholder; an image is drawn line by line (render_line)."""
        return Text(visible(self.placeholder), style="dim")  # a note may quote a path

    def render_line(self, y: int) -> Strip:
        lines = self._lines()
        if lines is None:
            return super().render_line(y)  # the placeholder, through render()
        if 0 <= y < len(lines):
            return lines[y]
        return Strip.blank(self.content_size.width, self.visual_style.rich_style)

    def _lines(self) -> list[Strip] | None:
        """Every line of the content area, the image placed in it; None: no image to draw."""
        image = self.image
        width, height = self.content_size
        if image is None or width < 1 or height < 1:
            return None
        align = (self.styles.content_align_horizontal, self.styles.content_align_vertical)
        place = (width, height, align)
        if self._cache and self._cache[0] is image and self._cache[1] == place:
            return self._cache[2]
        size = fit(image.size, (width, height))
        size = (size[0], size[1] + size[1] % 2)  # whole cells: two pixel rows each
        # Nearest keeps a tiny canvas crisp when enlarged; box filters a large one.
        enlarging = size[0] > image.size[0]
        resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
        rows = half_block_rows(image.convert("RGB").resize(size, resample))
        lines = _placed(rows, size[0], width, height, align, self.visual_style.rich_style)
        self._cache = (image, place, lines)
        return lines


def _placed(
    rows: list[list[Segment]],
    row_width: int,
    width: int,
    height: int,
    align: tuple[str, str],
    blank_style: Style,
) -> list[Strip]:
    """`height` strips of `width` cells: the rows placed as content-align says."""
    free_x, free_y = max(0, width - row_width), max(0, height - len(rows))
    left = {"left": 0, "center": free_x // 2, "right": free_x}.get(align[0], 0)
    top = {"top": 0, "middle": free_y // 2, "bottom": free_y}.get(align[1], 0)
    before = [Segment(" " * left, blank_style)] if left else []
    after = [Segment(" " * (free_x - left), blank_style)] if free_x - left else []
    blank = Strip.blank(width, blank_style)
    lines = [blank] * top
    lines += [Strip([*before, *row, *after], width).crop(0, width) for row in rows[:height]]
    return lines + [blank] * (height - len(lines))


def colour_hint(color_system: str | None, environ: Mapping[str, str]) -> str | None:
    """How to get true colour, when the terminal (as Rich reads its environment) has
    less: the preview's half blocks then snap to 256 colours and a photo turns into a
    mosaic. Over SSH and in tmux COLORTERM is often lost although the terminal has it."""
    if color_system in (None, "truecolor", "windows"):
        return None
    what = {"256": "256 colours", "standard": "16 colours"}.get(color_system, color_system)
    hint = (
        f"This terminal says it has {what}: the preview is coarse. If it shows true "
        "colour, start nst-tui with COLORTERM=truecolor"
    )
    if environ.get("TMUX"):
        hint += " and tell tmux: set -as terminal-features ',*:RGB' (then reattach)"
    return hint + ". The help (f1) says more."
