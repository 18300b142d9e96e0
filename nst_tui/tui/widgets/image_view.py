"""Images drawn with half blocks (rich-pixels): one cell shows 1x2 pixels.

The image is fitted to the widget's content area with its aspect ratio kept,
and the drawing is cached until the image or the size changes.
"""

from __future__ import annotations

from PIL import Image
from rich.console import RenderableType
from rich.text import Text
from rich_pixels import Pixels
from textual.reactive import reactive
from textual.widget import Widget


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
        # Nearest keeps a tiny canvas crisp when enlarged; box filters a large one.
        enlarging = size[0] > image.size[0]
        resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
        pixels = Pixels.from_image(image.convert("RGB").resize(size, resample))
        self._cache = (id(image), cells, pixels)
        return pixels
