"""The viewer: one picture full screen, zoomed from fit to 1:1 (and up to 8x), panned with
the arrows, and every saved frame of its run a key away.

What it shows comes from a `ViewSource`: a run folder (a single run's, or a sweep's cell's)
read through its `FrameStore`, and the picture the dashboard already holds (a live
preview, a final image shrunk) for when the folder has nothing yet. Files are decoded and
crops made off the UI thread (thread workers); the UI thread only draws the result, so a
4096 px final.png opens without stalling the dashboard (benchmarks/README.md times it).
Half blocks or real pixels, as the dashboard draws (at 1:1 with half blocks a cell is two
image pixels, one above the other).

The frame stepper: `[` `]` step through the saved frames (the run's GIF, or its frames
while it runs), `home` `end` go to the first and last, `space` plays them at the run's
fps, `l` goes back to the latest picture (the final image, or a running run's newest
frame, followed as the run goes on). The readout says the zoom, which image pixels are
shown, and at a frame its iteration and losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from PIL import Image
from textual import work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Label
from textual.worker import get_current_worker

from nst_tui.frame_store import FrameError, FrameInfo, FrameStore, image_size
from nst_tui.text import visible
from nst_tui.tui.job_state import JobState
from nst_tui.tui.keys import VIEWER_BINDINGS
from nst_tui.tui.viewport import Viewport
from nst_tui.tui.widgets.footer import Footer
from nst_tui.tui.widgets.loss_panel import TERMS, short
from nst_tui.tui.widgets.pixels import PixelView

FOLLOW_S = 1.0  # how often a running run's folder is looked at for a newer frame
FULL_AT = 2048  # pictures up to this many pixels on their long edge are decoded whole


@dataclass
class ViewSource:
    """What the viewer opens: a run folder and/or a picture held in memory."""

    title: str
    folder: Path | None = None
    image: Image.Image | None = None  # the dashboard's copy (a preview, a shrunk final)
    running: Callable[[], bool] | None = None  # still being written (a live run)
    title_now: Callable[[], str] | None = None  # a live run's title as its status changes

    def is_running(self) -> bool:
        return self.running is not None and self.running()

    def heading(self) -> str:
        return self.title_now() if self.title_now is not None else self.title


def source_for(job: JobState, cell: int | None = None) -> ViewSource:
    """What the viewer opens for a job of the dashboard: a run's canvas, or a sweep's cell
    (`cell`, else the selected one)."""
    index = job.selected if cell is None else cell
    view = job.cells[index]
    if job.is_sweep:
        image = view.preview

        def title() -> str:
            return f"Sweep {job.run_id} · cell {index}: {view.label} · {view.status}"

        def running() -> bool:
            return view.status in ("waiting", "running")
    else:
        image = job.final if job.final is not None else view.preview

        def title() -> str:
            return f"Run {job.run_id} · {job.record.label} · {job.record.status}"

        def running() -> bool:
            return job.record.status == "running"

    return ViewSource(title(), job.cell_folder(index), image, running, title)


@dataclass
class Picture:
    """A decoded picture: `image` may be a downscaled copy of a `full`-sized original."""

    full: tuple[int, int]
    image: Image.Image
    what: str  # "final" | "frame k" | "preview"

    @property
    def ratio(self) -> float:
        """Pixels of `image` per pixel of the original."""
        return self.image.width / max(1, self.full[0])


def render(picture: Picture, view: Viewport) -> Image.Image:
    """The view's box of the picture at its screen size (nearest when enlarging, so a
    pixel stays a sharp square; box filter when shrinking)."""
    left, top, right, bottom = view.box()
    r = picture.ratio
    crop = picture.image.crop(
        (
            math.floor(left * r),
            math.floor(top * r),
            max(math.floor(left * r) + 1, math.ceil(right * r)),
            max(math.floor(top * r) + 1, math.ceil(bottom * r)),
        )
    )
    out = view.out_px()
    if crop.size == out:
        return crop
    resample = Image.Resampling.NEAREST if out[0] >= crop.width else Image.Resampling.BOX
    return crop.resize(out, resample)


def _longest(full: tuple[int, int], longest: int | None) -> int | None:
    """Small originals are read whole (zooming then needs no second read); large ones
    downscaled to the view until a zoom needs more."""
    return None if longest is None or max(full) <= FULL_AT else longest


def losses_text(losses: dict[str, float]) -> str:
    parts = [f"{term} {short(losses[term])}" for term in TERMS if term in losses]
    return " · ".join(parts) if parts else "no losses logged at this frame"


class ViewerScreen(Screen[None]):
    """A picture full screen: zoom, pan, and its run's frames."""

    AUTO_FOCUS = None
    DEFAULT_CSS = """
    ViewerScreen {
        layout: vertical;
    }
    #viewer-title, #viewer-readout {
        height: 1;
        width: 1fr;
        padding: 0 1;
        background: $panel;
    }
    #viewer-readout {
        height: auto;
        max-height: 3;
    }
    #viewer-image {
        width: 1fr;
        height: 1fr;
        content-align: center middle;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = list(VIEWER_BINDINGS)  # nst_tui/tui/keys.py

    def __init__(self, source: ViewSource, frames: bool = False) -> None:
        super().__init__()
        self.source = source
        self.store = FrameStore(source.folder) if source.folder is not None else None
        self.frames: list[FrameInfo] = []
        self.index: int | None = None  # a frame's; None: the latest picture
        self.open_frames = frames
        self.picture: Picture | None = None
        self.view: Viewport | None = None
        self.note = ""  # why something is missing, shown in the readout
        self.frames_note = ""  # why there are no frames, when there are none
        self.playing = False
        self._play_timer: Timer | None = None
        self._follow_timer: Timer | None = None
        self._loading = False
        self._rendering = False
        self._render_again = False
        self.opened_at = time.perf_counter()
        self.first_drawn: float | None = None  # seconds from opening to the first picture

    def compose(self) -> ComposeResult:
        yield Label(visible(self.source.title), id="viewer-title")
        yield PixelView("loading…", id="viewer-image", exact=True)
        yield Label("", id="viewer-readout")
        yield Footer(compact=True)

    @property
    def canvas(self) -> PixelView:
        return self.query_one("#viewer-image", PixelView)

    def on_mount(self) -> None:
        self.list_frames(then_open=True)
        if self.source.is_running():
            self._follow_timer = self.set_interval(FOLLOW_S, self._follow)

    # ---- what there is -----------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="viewer-list")
    def list_frames(self, then_open: bool = False) -> None:
        frames = self.store.frames() if self.store is not None else []
        why = ""
        if not frames:
            why = self.store.why_none() if self.store is not None else "no run folder yet"
        self.app.call_from_thread(self._listed, frames, why, then_open)

    def _listed(self, frames: list[FrameInfo], why: str, then_open: bool) -> None:
        grew = len(frames) > len(self.frames)
        moved = [f.path for f in frames] != [f.path for f in self.frames]
        self.frames = frames
        self.frames_note = why
        newest = self.picture is not None and self.picture.what.endswith("(newest)")
        if then_open:
            if self.open_frames and frames:
                self.index = 0
            self.load_current()
        elif self.index is None and (grew or (newest and not self.source.is_running())):
            self.load_current()  # following the run: its newest frame, then its final image
        elif moved and self.index is not None and self.index < len(frames):
            self.load_current()  # the run ended: its frames are the GIF's now
        self._readout()

    def _follow(self) -> None:
        """While the run goes on: its newest frames; once it has ended, a last look (its
        frames moved into the GIF, its final image written), then no more."""
        self.list_frames()
        self.query_one("#viewer-title", Label).update(visible(self.source.heading()))
        if not self.source.is_running() and self._follow_timer is not None:
            self._follow_timer.stop()
            self._follow_timer = None

    # ---- loading a picture (a worker thread) -------------------------------------------------
    def view_cells(self) -> tuple[int, int, tuple[int, int]]:
        """The cells the picture may cover (cols, rows) and one cell's screen pixels: the
        canvas, less what the terminal's largest sixel image leaves out (xterm: 1000 px)."""
        cols, rows = self.canvas.content_size
        graphics = self.canvas.graphics
        if not self.canvas.pixels:
            return cols, rows, (1, 2)
        cw, ch = graphics.cell_px
        if graphics.max_px is not None:
            cols, rows = min(cols, graphics.max_px[0] // cw), min(rows, graphics.max_px[1] // ch)
        return cols, rows, (cw, ch)

    def load_current(self, full: bool = False) -> None:
        self._loading = True
        cols, rows, (cw, ch) = self.view_cells()
        longest = None if full else max(cols * cw, rows * ch, 64)
        self.load(self.index, longest)

    @work(thread=True, exclusive=True, exit_on_error=False, group="viewer-load")
    def load(self, index: int | None, longest: int | None) -> None:
        """Decode the picture (a frame, the final image, a running run's newest frame)."""
        try:
            picture = self._read(index, longest)
            note = ""
        except FrameError as exc:
            picture, note = None, str(exc)
        if get_current_worker().is_cancelled:
            return
        self.app.call_from_thread(self._loaded, index, picture, note)

    def _read(self, index: int | None, longest: int | None) -> Picture | None:
        store, frames = self.store, self.frames
        if index is not None and store is not None and index < len(frames):
            frame = frames[index]
            full = store.size_of(frame)
            image = store.load(frame, _longest(full, longest))
            return Picture(full, image, f"frame {index + 1}")
        if store is not None and store.final_path.is_file():
            full = image_size(store.final_path)
            return Picture(full, store.final(_longest(full, longest)), "final")
        if store is not None and frames and self.source.is_running():
            frame = frames[-1]
            full = store.size_of(frame)
            image = store.load(frame, _longest(full, longest))
            return Picture(full, image, f"frame {len(frames)} (newest)")
        if self.source.image is not None:
            return Picture(self.source.image.size, self.source.image, "preview")
        return None

    def _loaded(self, index: int | None, picture: Picture | None, note: str) -> None:
        self._loading = False
        if index != self.index:
            return  # stepped on since
        self.note = note
        if picture is None:
            if not note:
                self.note = "nothing to show yet"
            self.canvas.placeholder = self.note
            self.canvas.image = None
            self._readout()
            return
        first = self.picture is None or self.picture.full != picture.full
        self.picture = picture
        cols, rows, cell = self.view_cells()
        if first or self.view is None:
            self.view = Viewport(picture.full, cols, rows, cell).fitted()
        self.redraw()

    # ---- drawing -----------------------------------------------------------------------
    def redraw(self) -> None:
        if self.picture is None or self.view is None:
            return
        cols, rows, cell = self.view_cells()
        if (cols, rows, cell) != (self.view.cols, self.view.rows, self.view.cell) and cols > 0:
            self.view = self.view.resized(cols, rows, cell)
        need = min(1.0, self.view.scale)
        if self.picture.ratio < need * 0.99 and not self._loading:
            self.load_current(full=True)  # zoomed past what the copy holds: read more
        if self._rendering:
            self._render_again = True
        else:
            self._rendering = True
            self.render_view(self.picture, self.view)
        self._readout()

    @work(thread=True, exclusive=True, exit_on_error=False, group="viewer-render")
    def render_view(self, picture: Picture, view: Viewport) -> None:
        image = render(picture, view)
        self.app.call_from_thread(self._rendered, image)

    def _rendered(self, image: Image.Image) -> None:
        self._rendering = False
        self.canvas.image = image
        if self.first_drawn is None:
            self.first_drawn = time.perf_counter() - self.opened_at
        if self._render_again:
            self._render_again = False
            self.redraw()

    def on_resize(self) -> None:
        self.redraw()  # which resizes the view

    def _readout(self) -> None:
        parts = []
        if self.view is not None:
            parts.append(self.view.readout())
        picture = self.picture
        if self.index is not None and self.index < len(self.frames):
            frame = self.frames[self.index]
            state = " · playing" if self.playing else ""
            parts.append(
                f"frame {self.index + 1}/{len(self.frames)} · iteration {frame.iteration}{state}"
            )
            parts.append(losses_text(frame.losses))
        elif picture is not None:
            what = picture.what
            if self.frames:
                what += f" · {len(self.frames)} frames: [ ] to step"
            elif self.frames_note:
                what += f" · {self.frames_note}"
            parts.append(what)
        if self.note:
            parts.append(self.note)
        self.query_one("#viewer-readout", Label).update(visible(" · ".join(parts)))

    # ---- keys --------------------------------------------------------------------------
    def _move(self, view: Viewport | None) -> None:
        if view is not None and view != self.view:
            self.view = view
            self.redraw()

    def action_zoom(self, direction: int) -> None:
        if self.view is not None:
            self._move(self.view.zoomed_in() if direction > 0 else self.view.zoomed_out())

    def action_one_to_one(self) -> None:
        if self.view is not None:
            self._move(self.view.zoomed_to(1.0))

    def action_fit(self) -> None:
        if self.view is not None:
            self._move(self.view.fitted())

    def action_pan(self, dx: int, dy: int, far: bool = False) -> None:
        if self.view is not None:
            self._move(self.view.panned(dx, dy, far))

    def _go(self, index: int | None) -> None:
        if index == self.index:
            return
        self.index = index
        self.note = ""
        self.load_current(full=self.view is not None and not self.view.is_fit)
        self._readout()

    def action_step(self, delta: int) -> None:
        if not self.frames:
            self.notify(self.frames_note or "no saved frames", title="Frames", severity="warning")
            return
        if self.index is None:
            self._go(0 if delta > 0 else len(self.frames) - 1)
        else:
            self._go(max(0, min(len(self.frames) - 1, self.index + delta)))

    def action_jump(self, where: int) -> None:
        """The first frame (0) or the last (-1)."""
        if self.frames:
            self._go(where % len(self.frames))

    def action_latest(self) -> None:
        self._stop_playing()
        self._go(None)

    def action_play(self) -> None:
        if self.playing:
            self._stop_playing()
            self._readout()
            return
        if not self.frames:
            self.notify(self.frames_note or "no saved frames", title="Frames", severity="warning")
            return
        fps = self.store.fps if self.store is not None else 10
        if self.index is None or self.index >= len(self.frames) - 1:
            self._go(0)
        self.playing = True
        self._play_timer = self.set_interval(1 / fps, self._tick)
        self._readout()

    def _tick(self) -> None:
        if self._loading or self._rendering:
            return  # a frame still being read: playing slows rather than piling up
        if self.index is None or self.index >= len(self.frames) - 1:
            self._stop_playing()
            self._readout()
            return
        self._go(self.index + 1)

    def _stop_playing(self) -> None:
        self.playing = False
        if self._play_timer is not None:
            self._play_timer.stop()
            self._play_timer = None

    def action_close(self) -> None:
        self._stop_playing()
        if self.store is not None:
            self.store.close()
        self.dismiss(None)
