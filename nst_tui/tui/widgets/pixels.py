"""Pictures in real pixels (sixel, kitty graphics) where the terminal shows them, else the
half blocks of `ImageView`, unchanged.

`PixelView` is an `ImageView` (the same `image` and `placeholder`): with half blocks
(`graphics.current()` says so, always in tests and without the images extra) it *is*
ImageView, nothing added. With real pixels it draws the image into a `PixelLayer`, a
child sized in whole cells and placed as the widget's `content-align` says:

- The picture is scaled and encoded off the UI thread, by one `Encoder` thread for the
  whole dashboard (each widget's newest picture waits in its slot; older ones are
  dropped). The UI thread only writes out the encoded string, once per change.
- A widget redraws at most once per `interval`: what its last encoding cost, over
  BUDGET of one core, and never more often than FASTEST_S. A sixel image costs tens of
  milliseconds to encode where half blocks cost one (benchmarks/README.md), so a live
  canvas in pixels updates a few times a second; a still picture at once.
- No flicker: the layer's lines write nothing but the image itself (one sixel, drawn
  over the last one in place), so the terminal never shows the area cleared between two
  frames. textual-image's own sixel widget recomposes (a new child) per image, which
  does clear it (measured: benchmarks/README.md).
- Until the first picture is encoded, the half blocks show it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from rich.color import ColorSystem
from rich.control import Control
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.errors import NoWidget
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from nst_tui.tui import graphics
from nst_tui.tui.images import want_px
from nst_tui.tui.poster import Poster
from nst_tui.tui.widgets.image_view import ImageView

BUDGET = 0.10  # share of one core a widget's encodings may take, averaged over its redraws
FASTEST_S = 0.25  # s between two redraws of one widget at most (4 a second)
# An unchanged picture is written again this often (not more): a terminal may drop it
# (xterm keeps a handful of pictures, and drops the oldest first: a thumbnail drawn once).
HEAL_S = 4.0
_NULL = Style()
_NO_MOVE = [(ControlType.CURSOR_FORWARD, 0)]  # a control no one acts on: Rich leaves it be


# ---- encoding, off the UI thread ---------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One picture to encode: `image` drawn at `size` screen pixels, padded to `canvas`
    (whole cells) on `background`, for `kind` (sixel | kitty)."""

    image: Image.Image
    size: tuple[int, int]
    canvas: tuple[int, int]
    offset: tuple[int, int]
    background: tuple[int, int, int]
    kind: str
    done: Callable[[Any, float], None]  # (encoded, seconds), called on the encoder's thread


def render_job(job: Job) -> Image.Image:
    """The picture at its screen size, placed on a background of whole cells."""
    image = job.image.convert("RGB")
    if image.size != job.size:
        enlarging = job.size[0] > image.width
        resample = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
        image = image.resize(job.size, resample)
    if job.canvas == image.size:
        return image
    canvas = Image.new("RGB", job.canvas, job.background)
    canvas.paste(image, job.offset)
    return canvas


def encode(job: Job) -> Any:
    """The picture as the terminal takes it: a sixel string, or a PIL image for kitty."""
    picture = render_job(job)
    if job.kind == "sixel":
        from textual_image._sixel import image_to_sixels

        bg = (*job.background, 1.0)
        return hoist_registers(image_to_sixels(picture, background=bg))
    return picture


_RASTER = re.compile(r'\x1bP[0-9;]*q"\d+;\d+;\d+;\d+')
_REGISTER = re.compile(r"#(\d+);2;\d+;\d+;\d+")


def hoist_registers(sixel: str) -> str:
    """The sixel string with every colour register defined up front, after the raster
    attributes. textual-image 0.12 defines each register where it is first used; a
    terminal with a VT340's shared palette (xterm) then recolours the pixels already drawn
    with that register (register 0 fills the image first): speckles and wrong rows,
    seen in xterm -ti vt340. ImageMagick's encoder, which defines them first, draws clean."""
    head = _RASTER.match(sixel)
    if head is None:
        return sixel
    found: list[str] = []

    def take(match: re.Match[str]) -> str:
        found.append(match.group(0))
        return "#" + match.group(1)

    body = _REGISTER.sub(take, sixel[head.end() :])
    return head.group(0) + "".join(found) + body


Mail = dict[int, Job]


def _newest(older: Mail, newer: Mail) -> Mail:
    return {**older, **newer}


class Encoder:
    """One thread encodes for every widget; a widget's newer picture replaces its older."""

    def __init__(self) -> None:
        self.poster: Poster[Mail] = Poster(self._deliver, _newest, "nst-tui-pixels")

    def submit(self, key: int, job: Job) -> None:
        self.poster.send({key: job})

    def _deliver(self, mail: Mail) -> None:
        for job in mail.values():
            start = time.thread_time()
            try:
                data: Any = encode(job)
            except Exception as exc:  # a picture that cannot be encoded: say so, go on
                data = exc
            job.done(data, time.thread_time() - start)


ENCODER = Encoder()


# ---- the layer that holds the pixels ----------------------------------------------------
class PixelLayer(Widget, can_focus=False):
    """Whole cells covered by one picture. Its lines write only the picture: a sixel
    string at the layer's corner (nothing else, so nothing is cleared first), or kitty
    graphics' placeholder cells."""

    DEFAULT_CSS = """
    PixelLayer {
        width: 1;
        height: 1;
        display: none;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.sixel: str | None = None
        self.kitty: Any = None  # textual-image's TGP renderable
        self.fresh = True  # the picture must be written at the next render
        self.clear_first = True  # and its cells cleared first (shown anew, not replaced)
        self.cells = (1, 1)  # its size, in cells
        self.last_written = 0.0  # monotonic time the sixel was last written
        self.written = 0  # how many times (a sixel is tens to hundreds of kilobytes)

    def show(self, data: Any, cells: tuple[int, int], kind: str) -> None:
        if self.kitty is not None:
            self.kitty.cleanup()  # the terminal frees the last picture
            self.kitty = None
        self.sixel = None
        if kind == "sixel":
            self.sixel = data
        else:
            from textual_image.renderable.tgp import Image as TGPImage

            self.kitty = TGPImage(data, width=cells[0], height=cells[1])
        self.fresh = True
        resized = self.cells != cells or not self.display
        if resized:
            self.cells = cells
            self.styles.width, self.styles.height = cells
            self.display = True
        self.refresh(layout=resized)

    def on_mount(self) -> None:
        self.set_interval(HEAL_S, self._heal)

    def _heal(self) -> None:
        if self.sixel is not None and self.display and self.screen.is_active:
            self.refresh()  # written again if HEAL_S has passed since it last was

    def on_show(self) -> None:
        # Shown again (a screen above it closed): the terminal lost it, and its cells hold
        # that screen's text (the terminal keeps text under a picture; a window exposed
        # again shows it until the picture is redrawn). Cleared once, then drawn.
        self.fresh = self.clear_first = True

    def on_resize(self) -> None:
        self.fresh = self.clear_first = True

    def clear(self) -> None:
        if self.kitty is not None:
            self.kitty.cleanup()
        self.sixel, self.kitty = None, None
        self.display = False

    def render_lines(self, crop: Region) -> list[Strip]:
        blank = [Strip.blank(crop.width, self.visual_style.rich_style)] * crop.height
        if not self.is_attached or not self.screen.is_active:
            return blank  # behind a dialog (Textual tints what is beneath): blank
        if self.kitty is not None:
            return super().render_lines(crop)  # the renderable, through Rich
        region = self.region
        try:
            visible = self.screen.find_widget(self).visible_region
        except NoWidget:
            return blank
        if self.sixel is None or crop.height < 1 or visible != region:
            return blank  # before a picture, or partly scrolled out of sight
        # Every line moves the cursor over the picture without writing: a line of spaces
        # there would clear it, and the terminal could show that (flicker). The last one
        # writes the picture, when it is new, was lost (shown again, resized, part of it
        # drawn over: the crop is a part), or at most every HEAL_S: a repaint of the
        # widget around it (a caption) does not send a picture that is still there.
        width = crop.width
        skip = Strip([Segment(f"\x1b[{width}C", _NULL, _NO_MOVE)], cell_length=width)
        now = time.monotonic()
        whole = crop == Region(0, 0, region.width, region.height)
        if not (self.fresh or not whole or now - self.last_written >= HEAL_S):
            return [skip] * crop.height
        self.fresh, self.last_written = False, now
        self.written += 1
        clear: list[Segment] = []
        if self.clear_first:
            self.clear_first = False
            style = self.visual_style.rich_style
            skip = Strip([Segment(" " * width, style)], cell_length=width)
            clear = [Segment(" " * width, style)]
        last = Strip(
            [
                *clear,
                Segment(Control.move_to(region.x, region.y).segment.text, _NULL, _NO_MOVE),
                Segment(self.sixel, _NULL, _NO_MOVE),
                Segment(
                    Control.move_to(region.right, region.bottom - 1).segment.text, _NULL, _NO_MOVE
                ),
            ],
            cell_length=width,
        )
        return [skip] * (crop.height - 1) + [last]

    def render(self) -> Any:
        return self.kitty if self.kitty is not None else ""


class Encoded(Message):
    """A picture the encoder made for this widget."""

    def __init__(self, serial: int, data: Any, cost: float, cells: tuple[int, int]) -> None:
        super().__init__()
        self.serial, self.data, self.cost, self.cells = serial, data, cost, cells


# ---- the widget -------------------------------------------------------------------------
class PixelView(ImageView):
    """An `ImageView` that draws real pixels where the terminal can (graphics.current()).

    `exact`: the image is already at its screen size (the viewer's crops): drawn 1:1,
    centred, never scaled. Otherwise it is fitted to the widget, as ImageView fits it.
    """

    DEFAULT_CSS = """
    PixelView {
        layout: vertical;
    }
    """
    WANTS: str | None = None
    # Set without a repaint: with half blocks the watcher repaints; over real pixels the
    # picture is replaced by the layer when its encoding is ready.
    image: reactive[Image.Image | None] = reactive(None, always_update=True, repaint=False)

    def __init__(
        self,
        placeholder: str = "",
        *,
        id: str | None = None,
        classes: str | None = None,
        exact: bool = False,
        wants: str | None = None,
    ) -> None:
        super().__init__(placeholder, id=id, classes=classes)
        self.graphics = graphics.current()
        self.exact = exact
        self.wants = wants or self.WANTS  # preview | tile: the pixels it asks previews to have
        self._layer: PixelLayer | None = None
        self._serial = 0  # the newest picture asked for
        self._shown = 0  # the serial the layer shows; 0: none yet
        self._busy = False
        self._dirty = False
        self._next_at = 0.0  # monotonic time before which no new encoding starts
        self._timer: Any = None
        self.cost: float | None = None  # the last encoding's thread time, seconds
        self.spent = 0.0  # every encoding's, summed
        self.encodings = 0

    @property
    def pixels(self) -> bool:
        return self.graphics.pixels

    def compose(self) -> Any:
        if self.pixels:
            self._layer = PixelLayer()
            yield self._layer

    def on_mount(self) -> None:
        if self.pixels:
            self.styles.align_horizontal = self.styles.content_align_horizontal
            self.styles.align_vertical = self.styles.content_align_vertical

    def watch_image(self, image: Image.Image | None) -> None:
        if not self.pixels or not self._shown:
            self.refresh()  # half blocks (or the placeholder): drawn now
        if not self.pixels:
            return
        if image is None:
            self._dirty = False
            if self._layer is not None:
                self._layer.clear()
            self._shown = 0
            return
        self._want()

    def on_resize(self) -> None:
        if not self.pixels:
            return
        if self.wants is not None:
            cols, rows = self.content_size
            cw, ch = self.graphics.cell_px
            want_px(self.wants, max(cols * cw, rows * ch))
        if self.image is not None:
            self._want()

    def render_line(self, y: int) -> Strip:
        if self.pixels and self._shown and self.image is not None:
            return Strip.blank(self.content_size.width, self.visual_style.rich_style)
        return super().render_line(y)  # half blocks (or the placeholder)

    # ---- asking the encoder, at its pace ----------------------------------------------
    def _want(self) -> None:
        self._serial += 1
        self._dirty = True
        self._kick()

    def _kick(self) -> None:
        self._timer = None
        if self._busy or not self._dirty or not self.is_attached:
            return
        wait = self._next_at - time.monotonic()
        if wait > 0:
            if self._timer is None:
                self._timer = self.set_timer(wait, self._kick)
            return
        job = self._job()
        if job is None:
            return
        self._dirty, self._busy = False, True
        ENCODER.submit(id(self), job)

    def _job(self) -> Job | None:
        image = self.image
        cols, rows = self.content_size
        if image is None or cols < 1 or rows < 1:
            return None
        cw, ch = self.graphics.cell_px
        box_w, box_h = cols * cw, rows * ch
        if self.graphics.max_px is not None:
            box_w, box_h = min(box_w, self.graphics.max_px[0]), min(box_h, self.graphics.max_px[1])
        if self.exact:
            size = (min(image.width, box_w), min(image.height, box_h))
        else:
            scale = min(box_w / image.width, box_h / image.height)
            size = (
                max(1, math.floor(image.width * scale)),
                max(1, math.floor(image.height * scale)),
            )
        cells = (max(1, math.ceil(size[0] / cw)), max(1, math.ceil(size[1] / ch)))
        cells = (min(cells[0], cols), min(cells[1], rows))
        canvas = (cells[0] * cw, cells[1] * ch)
        offset = ((canvas[0] - size[0]) // 2, (canvas[1] - size[1]) // 2)
        bg = self._background()
        serial = self._serial

        def done(data: Any, cost: float) -> None:  # the encoder's thread
            self.post_message(Encoded(serial, data, cost, cells))

        return Job(image, size, canvas, offset, bg, self.graphics.kind, done)

    def _background(self) -> tuple[int, int, int]:
        """The colour the terminal shows around the picture, for the padding of its last
        cells: with 256 or 16 colours the theme's is shown as the nearest it has."""
        color = self.background_colors[1].rich_color
        system = {"256": ColorSystem.EIGHT_BIT, "standard": ColorSystem.STANDARD}.get(
            self.app.console.color_system or ""
        )
        if system is not None:
            color = color.downgrade(system)
        r, g, b = color.get_truecolor()
        return r, g, b

    def on_encoded(self, message: Encoded) -> None:
        message.stop()
        self._busy = False
        self.cost = message.cost
        self.spent += message.cost
        self.encodings += 1
        self._next_at = time.monotonic() + max(FASTEST_S, message.cost / BUDGET)
        if isinstance(message.data, Exception):
            # Half blocks from now on, for this widget: they always work.
            self.graphics = graphics.Graphics(reason=f"half blocks: {message.data}")
            if self._layer is not None:
                self._layer.clear()
            self._shown = 0
            self.refresh()
            self.notify(
                f"Real pixels failed ({message.data}); half blocks instead.",
                title="Graphics",
                severity="warning",
            )
            return
        if self._layer is not None and self.image is not None:
            self._layer.show(message.data, message.cells, self.graphics.kind)
            self._shown = message.serial
            self.refresh()
        self._kick()
