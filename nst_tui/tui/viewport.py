"""The viewer's arithmetic: which part of an image a view of terminal cells shows, and
where. Plain numbers, no widget, so it is tested on its own.

A view is `cols` x `rows` cells of `cell` = (w, h) screen pixels each: (1, 2) for half
blocks (a cell shows one pixel over another), the terminal's cell size for real pixels.
`scale` is screen pixels per image pixel: 1 is 1:1 (with half blocks a cell is then two
image pixels, one above the other), and `fit` shows the whole image. `left`, `top` are the
image pixel at the view's top-left corner; panning moves them, zooming keeps the image
point at the view's centre where it was. An image smaller than the view is centred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

LEVELS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0)  # zoom steps between fit and 8x
MAX_SCALE = 8.0
PAN_CELLS = 4  # an arrow moves the view by this many cells; shift+arrow by half the view


@dataclass(frozen=True)
class Viewport:
    image: tuple[int, int]  # the full image's pixels (w, h)
    cols: int
    rows: int
    cell: tuple[int, int] = (1, 2)
    scale: float = 0.0  # 0: fit (resolved by `fitted`)
    left: float = 0.0
    top: float = 0.0

    # ---- sizes ----------------------------------------------------------------------
    @property
    def view_px(self) -> tuple[int, int]:
        return self.cols * self.cell[0], self.rows * self.cell[1]

    @property
    def fit_scale(self) -> float:
        (w, h), (vw, vh) = self.image, self.view_px
        if w < 1 or h < 1 or vw < 1 or vh < 1:
            return 1.0
        return min(vw / w, vh / h)

    @property
    def is_fit(self) -> bool:
        return math.isclose(self.scale, self.fit_scale, rel_tol=1e-9)

    def fitted(self) -> Viewport:
        """At fit, the whole image shown and centred."""
        return replace(self, scale=self.fit_scale, left=0.0, top=0.0).clamped()

    def resized(self, cols: int, rows: int, cell: tuple[int, int] | None = None) -> Viewport:
        """The same view on a new size (the centre kept; at fit, fit again)."""
        was_fit = self.scale <= 0 or self.is_fit
        view = replace(self, cols=max(1, cols), rows=max(1, rows), cell=cell or self.cell)
        if was_fit:
            return view.fitted()
        cx, cy = self.centre
        return view.centred_on(cx, cy)

    # ---- where -----------------------------------------------------------------------
    @property
    def shown_px(self) -> tuple[float, float]:
        """Image pixels across and down the view (the whole image when it fits)."""
        (w, h), (vw, vh) = self.image, self.view_px
        return min(w, vw / self.scale), min(h, vh / self.scale)

    @property
    def centre(self) -> tuple[float, float]:
        sw, sh = self.shown_px
        return self.left + sw / 2, self.top + sh / 2

    def centred_on(self, x: float, y: float) -> Viewport:
        sw, sh = replace(self).shown_px
        return replace(self, left=x - sw / 2, top=y - sh / 2).clamped()

    def clamped(self) -> Viewport:
        """Left and top kept inside the image; whole pixels at 1:1 and above."""
        (w, h), (sw, sh) = self.image, self.shown_px
        left = min(max(0.0, self.left), max(0.0, w - sw))
        top = min(max(0.0, self.top), max(0.0, h - sh))
        if self.scale >= 1:
            left, top = float(math.floor(left + 1e-9)), float(math.floor(top + 1e-9))
        return replace(self, left=left, top=top)

    @property
    def offset_px(self) -> tuple[int, int]:
        """Screen pixels from the view's corner to the image's, when it is smaller (centred)."""
        (w, h), (vw, vh) = self.image, self.view_px
        ox = max(0, (vw - round(w * self.scale)) // 2)
        oy = max(0, (vh - round(h * self.scale)) // 2)
        return ox, oy

    def box(self) -> tuple[int, int, int, int]:
        """The image pixels the view shows: (left, top, right, bottom), whole pixels."""
        (w, h), (sw, sh) = self.image, self.shown_px
        left, top = math.floor(self.left), math.floor(self.top)
        right = min(w, math.ceil(self.left + sw - 1e-9))
        bottom = min(h, math.ceil(self.top + sh - 1e-9))
        return left, top, max(left + 1, right), max(top + 1, bottom)

    def out_px(self) -> tuple[int, int]:
        """The screen pixels the box is drawn at."""
        left, top, right, bottom = self.box()
        vw, vh = self.view_px
        return (
            max(1, min(vw, round((right - left) * self.scale))),
            max(1, min(vh, round((bottom - top) * self.scale))),
        )

    def pixel_at(self, col: int, row: int, sub: int = 0) -> tuple[int, int] | None:
        """The image pixel drawn at cell (col, row); `sub` picks the screen pixel row inside
        the cell (with half blocks: 0 the upper, 1 the lower). None: no image there."""
        ox, oy = self.offset_px
        sx = col * self.cell[0] - ox
        sy = row * self.cell[1] + sub - oy
        ow, oh = self.out_px()
        if not (0 <= sx < ow and 0 <= sy < oh):
            return None
        left, top, _, _ = self.box()
        x = math.floor(self.left + sx / self.scale + 1e-9)
        y = math.floor(self.top + sy / self.scale + 1e-9)
        return max(left, min(x, self.image[0] - 1)), max(top, min(y, self.image[1] - 1))

    # ---- moves -----------------------------------------------------------------------
    def panned(self, dx: int, dy: int, far: bool = False) -> Viewport:
        """Moved by `dx`, `dy` steps: PAN_CELLS cells each, or half the view when `far`."""
        if far:
            sw, sh = self.shown_px
            step_x, step_y = sw / 2, sh / 2
        else:
            step_x = PAN_CELLS * self.cell[0] / self.scale
            step_y = PAN_CELLS * self.cell[1] / self.scale
        if self.scale >= 1:
            step_x, step_y = max(1.0, round(step_x)), max(1.0, round(step_y))
        return replace(self, left=self.left + dx * step_x, top=self.top + dy * step_y).clamped()

    def zoomed_to(self, scale: float) -> Viewport:
        """At `scale` (fit at most fit's, never past MAX_SCALE), the centre kept."""
        lowest = min(self.fit_scale, 1.0)
        scale = min(MAX_SCALE, max(lowest, scale))
        cx, cy = self.centre
        return replace(self, scale=scale).centred_on(cx, cy)

    def zoomed_in(self) -> Viewport:
        higher = [s for s in (*LEVELS, self.fit_scale) if s > self.scale * (1 + 1e-9)]
        return self.zoomed_to(min(higher)) if higher else self

    def zoomed_out(self) -> Viewport:
        lower = [s for s in (*LEVELS, self.fit_scale) if s < self.scale * (1 - 1e-9)]
        lower = [s for s in lower if s >= min(self.fit_scale, 1.0) * (1 - 1e-9)]
        return self.zoomed_to(max(lower)) if lower else self

    # ---- what the readout says ---------------------------------------------------------
    def readout(self) -> str:
        """`fit 37% · x 0-511 y 0-511 of 512×512` / `1:1 · x 128-287 y 64-159 of 512×512`."""
        left, top, right, bottom = self.box()
        w, h = self.image
        if self.is_fit:
            zoom = f"fit {self.scale:.0%}"
        elif self.scale >= 1:
            zoom = f"{self.scale:g}:1"
        else:
            zoom = f"1:{1 / self.scale:g}"
        return f"{zoom} · x {left}-{right - 1} y {top}-{bottom - 1} of {w}×{h}"
