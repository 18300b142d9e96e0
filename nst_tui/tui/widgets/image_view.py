"""Images drawn with half blocks (rich-pixels): one cell shows 1x2 pixels.

The image is fitted to the widget's content area with its aspect ratio kept,
and the drawing is cached until the image or the size changes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
from rich.color import Color
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from rich_pixels import Pixels
from textual.reactive import reactive
from textual.widget import Widget

LOWER_HALF = "\u2584"  # as rich-pixels draws: glyph = lower pixel, background = upper


@lru_cache(maxsize=1 << 16)
def _cell_style(top: int, bottom: int) -> Style:
    """One style per colour pair (0xRRGGBB each), made once: previews share colours."""
    return Style(
        color=Color.from_rgb(bottom >> 16, (bottom >> 8) & 255, bottom & 255),
        bgcolor=Color.from_rgb(top >> 16, (top >> 8) & 255, top & 255),
    )


def half_blocks(image: Image.Image) -> Pixels:
    """The image as rich-pixels' half-block cells.

    Built here rather than with Pixels.from_image, which parses a style string per cell
    on the UI thread (about four times slower on a 100 x 80 preview): a run redraws
    its preview several times a second while its own thread waits for the GIL.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if packed.shape[0] % 2:  # an odd last row fills its cell, as rich-pixels draws it
        packed = np.vstack([packed, packed[-1:]])
    segments: list[Segment] = []
    newline = Segment.line()
    for top, bottom in zip(packed[0::2].tolist(), packed[1::2].tolist(), strict=True):
        segments += [
            Segment(LOWER_HALF, _cell_style(t, b)) for t, b in zip(top, bottom, strict=True)
        ]
        segments.append(newline)
    return Pixels.from_segments(segments)


def fit(image_size: tuple[int, int], cells: tuple[int, int]) -> tuple[int, int]:
    """Pixel size of `image_size` scaled to fit `cells` (w, h), at 1x2 pixels per cell."""
    w, h = image_size
    box_w, box_h = cells[0], cells[1] * 2
    scale = min(box_w / w, box_h / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def shrink(image: Image.Image, longest: int) -> Image.Image:
    """A copy no longer than `longest` on either edge (cheap to send and redraw)."""
    if max(image.size) <= longest:
        return image.copy()
    scaled = fit(image.size, (longest, longest // 2))
    return image.resize(scaled, Image.Resampling.BOX)


class ImageView(Widget):
    """A PIL image fitted to the widget, or a placeholder line."""

    image: reactive[Image.Image | None] = reactive(None, always_update=True)

    def __init__(
        self, placeholder: str = "", *, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.placeholder = placeholder
        self._cache: tuple[int, tuple[int, int], Pixels] | None = None

    def render(self) -> RenderableType:
        image = self.image
        cells = (self.content_size.width, self.content_size.height)
        if image is None or cells[0] < 1 or cells[1] < 1:
            return Text(self.placeholder, style="dim")
        if self._cache and self._cache[0] == id(image) and self._cache[1] == cells:
            return self._cache[2]
        size = fit(image.size, cells)
        size = (size[0], size[1] + size[1] % 2)  # whole cells: two pixel rows each
        # Nearest keeps a tiny canvas crisp when enlarged; box filters a large one.
        enlarging = size[0] > image.size[0]
        resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
        pixels = half_blocks(image.convert("RGB").resize(size, resample))
        self._cache = (id(image), cells, pixels)
        return pixels
