"""A sweep's contact sheet: the cells' images in their grid, with row and column labels.

`sheet.png` shows each cell's final canvas; `sheet.gif` plays the same grid over the
cells' saved frames (a cell that has run out of frames holds its last one). Small
canvases are enlarged by a whole factor, pixels kept sharp, so that a 32 px sweep
still reads and its labels fit.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from nst_tui.records import png_bytes, write_atomic, write_gif

MIN_TILE = 128  # long edge, in pixels, below which canvases are enlarged
GAP = 6  # between tiles
MARGIN = 10
FONT_SIZE = 13
ROW_LABEL_MAX = 180  # row labels wrap at this width
MAX_GIF_FRAMES = 200  # longer sweeps are sampled evenly: the GIF stays small to write and play
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
DIM = (110, 110, 110)
EMPTY = (225, 225, 225)  # a cell with no image

Tile = Image.Image | np.ndarray | None


def font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def wrap(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy line breaks after spaces, '+', ',' and '-'; a word wider than `width` is cut."""
    if not text:
        return []
    lines: list[str] = []
    line = ""
    for token in re.split(r"(?<=[ +,-])", text):
        if fnt.getlength(line + token) <= width or not line:
            line += token
        else:
            lines.append(line.rstrip())
            line = token
        while fnt.getlength(line) > width and len(line) > 1:
            cut = len(line)
            while cut > 1 and fnt.getlength(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines


@dataclass(frozen=True)
class SheetLayout:
    """Where everything goes; tile (r, c) is the cell in row r, column c."""

    rows: int
    cols: int
    scale: int  # whole-number enlargement of every canvas
    tile_w: int
    tile_h: int
    left: int  # x of the first tile column
    top: int  # y of the first tile row
    width: int
    height: int
    title: list[str]
    col_lines: list[list[str]]
    row_lines: list[list[str]]
    line_h: int

    def tile_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        x = self.left + col * (self.tile_w + GAP)
        y = self.top + row * (self.tile_h + GAP)
        return x, y, x + self.tile_w, y + self.tile_h


def layout(
    sizes: Sequence[Sequence[tuple[int, int] | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
) -> SheetLayout:
    """Lay out a rows x cols grid of images of the given (width, height) sizes."""
    rows, cols = len(sizes), len(sizes[0]) if sizes else 0
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"{rows}x{cols} grid but {len(row_labels)}x{len(col_labels)} labels")
    known = [s for row in sizes for s in row if s is not None] or [(MIN_TILE, MIN_TILE)]
    raw_w, raw_h = max(w for w, _ in known), max(h for _, h in known)
    scale = max(1, -(-MIN_TILE // max(raw_w, raw_h)))  # ceil division
    tile_w, tile_h = raw_w * scale, raw_h * scale
    fnt = font()
    line_h = _line_height(fnt)
    col_lines = [wrap(label, fnt, tile_w) for label in col_labels]
    row_lines = [wrap(label, fnt, ROW_LABEL_MAX) for label in row_labels]
    row_w = max((fnt.getlength(line) for lines in row_lines for line in lines), default=0)
    row_w = int(row_w) + GAP * 2 if row_w else 0
    grid_w = cols * tile_w + (cols - 1) * GAP
    title_lines = wrap(title, fnt, max(grid_w + row_w, 200))
    title_h = len(title_lines) * line_h + (GAP if title_lines else 0)
    col_h = max((len(lines) for lines in col_lines), default=0) * line_h
    col_h += GAP if col_h else 0
    left = MARGIN + row_w
    top = MARGIN + title_h + col_h
    title_w = max((int(fnt.getlength(t)) for t in title_lines), default=0)
    width = max(left + grid_w, MARGIN + title_w)
    return SheetLayout(
        rows=rows,
        cols=cols,
        scale=scale,
        tile_w=tile_w,
        tile_h=tile_h,
        left=left,
        top=top,
        width=width + MARGIN,
        height=top + rows * tile_h + (rows - 1) * GAP + MARGIN,
        title=title_lines,
        col_lines=col_lines,
        row_lines=row_lines,
        line_h=line_h,
    )


def _line_height(fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    _, top, _, bottom = fnt.getbbox("Ag_|")
    return int(bottom - min(top, 0)) + 3


class Sheet:
    """The labelled, empty grid; tiles are pasted in per image (or per GIF frame).

    `notes` caption single tiles ((row, col) -> text, e.g. "cancelled at 124/2500"):
    drawn over the tile's foot, so a stopped cell does not pass for a finished one."""

    def __init__(
        self, lay: SheetLayout, notes: Mapping[tuple[int, int], str] | None = None
    ) -> None:
        self.layout = lay
        self.notes = dict(notes or {})
        self.base = Image.new("RGB", (lay.width, lay.height), BACKGROUND)
        draw = ImageDraw.Draw(self.base)
        fnt = font()
        y: float = MARGIN
        for line in lay.title:
            draw.text((MARGIN, y), line, fill=DIM, font=fnt)
            y += lay.line_h
        for c, lines in enumerate(lay.col_lines):
            x0, y0, x1, _ = lay.tile_box(0, c)
            y = y0 - GAP - len(lines) * lay.line_h
            for line in lines:
                x = x0 + (x1 - x0 - fnt.getlength(line)) / 2
                draw.text((x, y), line, fill=INK, font=fnt)
                y += lay.line_h
        for r, lines in enumerate(lay.row_lines):
            x0, y0, _, y1 = lay.tile_box(r, 0)
            y = y0 + (y1 - y0 - len(lines) * lay.line_h) / 2
            for line in lines:
                draw.text((x0 - GAP - fnt.getlength(line), y), line, fill=INK, font=fnt)
                y += lay.line_h
        for r in range(lay.rows):
            for c in range(lay.cols):
                draw.rectangle(_inclusive(lay.tile_box(r, c)), fill=EMPTY)

    def render(self, tiles: Sequence[Sequence[Tile]]) -> Image.Image:
        out = self.base.copy()
        for r, row in enumerate(tiles):
            for c, tile in enumerate(row):
                if tile is not None:
                    self.paste(out, r, c, tile)
        self._caption(out)
        return out

    def _caption(self, out: Image.Image) -> None:
        if not self.notes:
            return
        draw, fnt = ImageDraw.Draw(out), font()
        for (r, c), text in self.notes.items():
            x0, _, x1, y1 = self.layout.tile_box(r, c)
            (line, *_) = wrap(text, fnt, x1 - x0 - 4) or [""]
            top = y1 - self.layout.line_h - 2
            draw.rectangle((x0, top, x1 - 1, y1 - 1), fill=INK)
            draw.text((x0 + 2, top + 1), line, fill=BACKGROUND, font=fnt)

    def paste(self, out: Image.Image, row: int, col: int, tile: Image.Image | np.ndarray) -> None:
        im = Image.fromarray(tile) if isinstance(tile, np.ndarray) else tile.convert("RGB")
        s = self.layout.scale
        if s > 1:
            im = im.resize((im.width * s, im.height * s), Image.Resampling.NEAREST)
        x0, y0, x1, y1 = self.layout.tile_box(row, col)
        # Centred: canvases of a size sweep keep their relative sizes.
        out.paste(im, (x0 + (x1 - x0 - im.width) // 2, y0 + (y1 - y0 - im.height) // 2))


def _inclusive(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return x0, y0, x1 - 1, y1 - 1


def _size(tile: Tile) -> tuple[int, int] | None:
    if tile is None:
        return None
    if isinstance(tile, np.ndarray):
        return tile.shape[1], tile.shape[0]
    return tile.size


def sheet_for(
    images: Sequence[Sequence[Tile]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    notes: Mapping[tuple[int, int], str] | None = None,
) -> Sheet:
    sizes = [[_size(t) for t in row] for row in images]
    return Sheet(layout(sizes, row_labels, col_labels, title), notes)


def render_sheet(
    images: Sequence[Sequence[Tile]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
) -> Image.Image:
    """The table of final images (None leaves a grey tile)."""
    return sheet_for(images, row_labels, col_labels, title).render(images)


def write_sheet_png(path: Path, image: Image.Image) -> None:
    write_atomic(path, png_bytes(np.asarray(image)))


def gif_frames(path: Path | None) -> Generator[Image.Image]:
    """The frames of a cell's animation.gif, one at a time (none if it has no GIF)."""
    if path is None or not path.is_file():
        return
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            yield frame.convert("RGB")


def animate(
    sheet: Sheet,
    sources: Sequence[Sequence[Iterator[Image.Image]]],
    counts: Sequence[Sequence[int]],
    finals: Sequence[Sequence[Tile]],
) -> Iterator[Image.Image]:
    """Sheet frames over the cells' frames, sampled evenly to at most MAX_GIF_FRAMES.

    Frame t shows each cell's t-th saved frame; a cell that has run out holds its last,
    and one that saved none (cancelled before its first) shows its final image."""
    total = max((n for row in counts for n in row), default=0)
    if total == 0:
        yield sheet.render(finals)
        return
    n = min(total, MAX_GIF_FRAMES)
    wanted = sorted({round(j * (total - 1) / max(n - 1, 1)) for j in range(n)})
    current = [[None if f is None else _as_image(f) for f in row] for row in finals]
    pos = [[-1] * len(row) for row in sources]
    for t in wanted:
        for r, row in enumerate(sources):
            for c, frames in enumerate(row):
                while pos[r][c] < min(t, counts[r][c] - 1):
                    frame = next(frames, None)
                    if frame is None:
                        break
                    current[r][c] = frame
                    pos[r][c] += 1
        yield sheet.render(current)


def _as_image(tile: Image.Image | np.ndarray) -> Image.Image:
    return Image.fromarray(tile) if isinstance(tile, np.ndarray) else tile


def write_sheet_gif(
    path: Path,
    sheet: Sheet,
    gifs: Sequence[Sequence[Path | None]],
    counts: Sequence[Sequence[int]],
    finals: Sequence[Sequence[Tile]],
    fps: int,
) -> int:
    """Write sheet.gif from the cells' animation.gif files; returns the frame count."""
    sources = [[gif_frames(p) for p in row] for row in gifs]
    try:
        return write_gif(path, animate(sheet, sources, counts, finals), fps)
    finally:
        for row in sources:
            for it in row:
                it.close()
