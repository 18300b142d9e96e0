"""Picture sizes for the dashboard: an image fitted to terminal cells, a small copy of one.

No widget here: the relay shrinks canvases off the UI thread, the job state its final
images, and the image widget fits what it draws.
"""

from __future__ import annotations

from PIL import Image

TILE_PX = 96  # a grid tile is a fraction of the canvas pane: this is plenty
PREVIEW_PX = 256  # the preview pane never needs more than this on its long edge
# In real pixels (nst_tui/tui/graphics.py) a pane shows as many pixels as its cells hold:
# the widgets say how many (`want_px`), up to this, and previews are shrunk to that.
MOST_PX = 1024
_DEFAULTS = {"preview": PREVIEW_PX, "tile": TILE_PX}
_wanted: dict[str, int] = {}  # written on the UI thread, read by the relay's: one int each


def want_px(kind: str, px: int) -> None:
    """A widget drawing real pixels shows `px` on its long edge (kind: preview | tile)."""
    _wanted[kind] = min(MOST_PX, px)


def wanted_px(kind: str) -> int:
    """How long a preview (or a tile) is shrunk to: PREVIEW_PX (TILE_PX) for half blocks,
    what the widget shows in real pixels."""
    return max(_DEFAULTS[kind], _wanted.get(kind, 0))


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
