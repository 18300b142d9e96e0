"""Which pictures the terminal can show: real pixels (sixel, kitty graphics) or half blocks.

Decided once, before the dashboard starts (the terminal is asked on stdin, which Textual
reads once it runs): `--graphics` or `NST_TUI_GRAPHICS` says auto (the default), sixel,
kitty or blocks. Real pixels need the optional extra (`pip install 'nst-tui[images]'`,
textual-image); without it, on a pipe, or when the terminal does not answer the query
(or answers it wrongly) the dashboard draws half blocks as it always has, and `reason`
says why. Nothing here imports textual-image unless real pixels may be used, so the
half-block path is the same with or without the extra.

Widgets read `current()`; tests and headless runs get half blocks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TextIO

MODES = ("auto", "sixel", "kitty", "blocks")
ENV = "NST_TUI_GRAPHICS"
INSTALL = "pip install 'nst-tui[images]'"
DEFAULT_CELL_PX = (10, 20)  # a VT340's cell, what textual-image assumes when not told


@dataclass(frozen=True)
class Graphics:
    """How pictures are drawn: `kind` sixel | kitty | blocks, and why."""

    kind: str = "blocks"
    reason: str = "half blocks"
    cell_px: tuple[int, int] = DEFAULT_CELL_PX  # one cell's pixels (w, h) where pixels are drawn
    max_px: tuple[int, int] | None = None  # the largest sixel image the terminal takes, if said
    asked: str = "auto"  # what --graphics / NST_TUI_GRAPHICS asked for

    @property
    def pixels(self) -> bool:
        return self.kind != "blocks"

    @property
    def notice(self) -> str | None:
        """What to tell the user at start, if anything: real pixels were asked for and are
        not drawn, the terminal's answer was not understood, or tmux stands in the way.
        Half blocks without the extra, as ever, need no word."""
        if self.pixels or self.asked == "blocks":
            return None
        if self.asked in ("sixel", "kitty") or "not understood" in self.reason:
            return self.reason[0].upper() + self.reason[1:]
        if "tmux" in self.reason:
            return (
                "Half blocks: tmux did not pass the graphics query on. Real pixels in tmux "
                "need tmux 3.4 built with sixel (docs/real-pixels.md)."
            )
        return None


BLOCKS = Graphics()
_current = BLOCKS


def current() -> Graphics:
    """What the dashboard draws with (half blocks until `use` says otherwise)."""
    return _current


def use(graphics: Graphics) -> None:
    global _current
    _current = graphics


def mode_from(cli: str | None, environ: Mapping[str, str]) -> str:
    """The mode asked for: the CLI's, else the environment's, else auto. An unknown value in
    the environment is ignored with auto (the CLI's own are checked by argparse)."""
    if cli:
        return cli
    value = environ.get(ENV, "").strip().lower()
    return value if value in MODES else "auto"


Probe = Callable[[], tuple[str, tuple[int, int], tuple[int, int] | None]]


def detect(
    mode: str,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    probe: Probe | None = None,
) -> Graphics:
    """Decide how to draw. `probe` asks the terminal (textual-image's queries; replaced in
    tests): it returns the protocol it found (sixel | kitty | none), the cell's pixels and the
    largest sixel image, or raises ImportError without the extra."""
    environ = os.environ if environ is None else environ
    stdout = stdout if stdout is not None else sys.__stdout__
    if mode == "blocks":
        return Graphics(reason="half blocks (asked for)", asked=mode)
    if mode not in MODES:
        return Graphics(reason=f"half blocks: unknown graphics mode {mode!r}")
    if stdout is None or not _isatty(stdout):
        return Graphics(reason="half blocks: not a terminal", asked=mode)
    try:
        found, cell_px, max_px = (probe or partial(_probe, bool(environ.get("TMUX"))))()
    except ImportError:
        return Graphics(
            reason=f"half blocks: real pixels need the images extra ({INSTALL})", asked=mode
        )
    except Exception as exc:  # a terminal that answers wrongly must not stop the dashboard
        return Graphics(
            reason=f"half blocks: the terminal's answer was not understood ({exc})", asked=mode
        )
    finally:
        if probe is None:
            _drop_unread_input()  # what a wrong answer left must not reach Textual as keys
    cell_px = _sane_cell(cell_px)
    if mode != "auto":  # forced: trust the user, whatever the terminal said
        return Graphics(mode, f"{mode} (asked for)", cell_px, max_px, mode)
    if found in ("sixel", "kitty"):
        return Graphics(found, f"{found} (the terminal says it can)", cell_px, max_px, mode)
    why = "half blocks: the terminal reports no sixel or kitty graphics"
    if environ.get("TMUX"):
        why += " (inside tmux: see docs/real-pixels.md)"
    return Graphics(reason=why, asked=mode)


def _drop_unread_input() -> None:
    """Discard what the terminal sent that the queries did not read (the rest of a garbled
    answer): Textual would read it as key presses."""
    try:
        import termios

        stdin = sys.__stdin__
        if stdin is not None and stdin.isatty():
            termios.tcflush(stdin.fileno(), termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # closed
        return False


def _sane_cell(cell: tuple[int, int]) -> tuple[int, int]:
    """A cell of 2..64 pixels each way; anything else (a wrong answer) is the VT340's."""
    w, h = cell
    if isinstance(w, int) and isinstance(h, int) and 2 <= w <= 64 and 2 <= h <= 64:
        return w, h
    return DEFAULT_CELL_PX


def _probe(in_tmux: bool = False) -> tuple[str, tuple[int, int], tuple[int, int] | None]:
    """textual-image's own detection (it asks the terminal as it is imported). Inside tmux
    only the sixel question is asked: tmux takes the kitty graphics query (an APC string)
    for a window title and renames the window, and could not pass kitty graphics on
    without passthrough anyway."""
    from textual_image._sixel import image_to_sixels  # noqa: F401  (the encoder we use)
    from textual_image._terminal import get_cell_size

    if in_tmux:
        cell = get_cell_size()
        found = "sixel" if _says_sixel() else "none"
        return found, (cell.width, cell.height), _max_sixel_px() if found == "sixel" else None
    import textual_image.renderable as renderable
    from textual_image.renderable.sixel import Image as SixelImage
    from textual_image.renderable.tgp import Image as TGPImage

    cell = get_cell_size()
    if renderable.Image is SixelImage:
        return "sixel", (cell.width, cell.height), _max_sixel_px()
    if renderable.Image is TGPImage:
        return "kitty", (cell.width, cell.height), None
    return "none", (cell.width, cell.height), None


def _says_sixel() -> bool:
    """The device attributes (DA1) list 4: sixel graphics."""
    from textual_image._terminal import TerminalError, capture_terminal_response

    try:
        with capture_terminal_response("\x1b[?", "c", 0.1) as response:
            out: Any = sys.__stdout__
            out.write("\x1b[c")
            out.flush()
    except (TerminalError, TimeoutError, OSError):
        return False
    return "4" in response.sequence.removeprefix("\x1b[?").removesuffix("c").split(";")


def _max_sixel_px() -> tuple[int, int] | None:
    """XTSMGRAPHICS: the largest sixel image the terminal shows (xterm's is 1000x1000 unless
    its maxGraphicSize says more); None when it does not say."""
    from textual_image._terminal import TerminalError, capture_terminal_response

    try:
        with capture_terminal_response("\x1b[?", "S", 0.1) as response:
            out: Any = sys.__stdout__
            out.write("\x1b[?2;1;0S")
            out.flush()
    except (TerminalError, TimeoutError, OSError, UnicodeDecodeError):
        return None
    return parse_max_px(response.sequence)


def parse_max_px(answer: str) -> tuple[int, int] | None:
    """`ESC [ ? 2 ; 0 ; W ; H S` -> (W, H); anything else -> None."""
    body = answer.removeprefix("\x1b[?").removesuffix("S").split(";")
    if len(body) != 4 or body[:2] != ["2", "0"]:
        return None
    try:
        w, h = int(body[2]), int(body[3])
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None
