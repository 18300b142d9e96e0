"""How the dashboard decides to draw real pixels or half blocks: the terminal's answer, the
switch (--graphics, NST_TUI_GRAPHICS), and the fallback whenever anything is missing or
wrong (no extra, not a terminal, no protocol, inside tmux, a garbled answer)."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from nst_tui.tui import graphics
from nst_tui.tui.graphics import DEFAULT_CELL_PX, detect, mode_from, parse_max_px

ROOT = Path(__file__).resolve().parents[2]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def probe(found: str, cell: tuple[int, int] = (9, 18), max_px: tuple[int, int] | None = None):
    return lambda: (found, cell, max_px)


def test_the_switch_and_the_environment() -> None:
    assert mode_from(None, {}) == "auto"
    assert mode_from(None, {"NST_TUI_GRAPHICS": "Blocks "}) == "blocks"
    assert mode_from(None, {"NST_TUI_GRAPHICS": "holograms"}) == "auto"  # ignored
    assert mode_from("sixel", {"NST_TUI_GRAPHICS": "blocks"}) == "sixel"  # the CLI wins


def test_a_terminal_that_says_sixel_gets_sixel() -> None:
    g = detect("auto", {}, Tty(), probe("sixel", (9, 18), (1000, 1000)))
    assert (g.kind, g.cell_px, g.max_px, g.pixels) == ("sixel", (9, 18), (1000, 1000), True)
    assert detect("auto", {}, Tty(), probe("kitty")).kind == "kitty"


def test_no_protocol_falls_back_to_half_blocks_and_says_why() -> None:
    g = detect("auto", {}, Tty(), probe("none"))
    assert g.kind == "blocks" and "no sixel or kitty" in g.reason
    in_tmux = detect("auto", {"TMUX": "/tmp/tmux-0/default,1,0"}, Tty(), probe("none"))
    assert in_tmux.kind == "blocks" and "tmux" in in_tmux.reason


def test_blocks_asked_for_asks_the_terminal_nothing() -> None:
    def never() -> tuple[str, tuple[int, int], None]:
        raise AssertionError("the terminal was asked")

    assert detect("blocks", {}, Tty(), never).kind == "blocks"


def test_not_a_terminal_is_half_blocks() -> None:
    assert detect("auto", {}, io.StringIO(), probe("sixel")).kind == "blocks"
    assert detect("sixel", {}, io.StringIO(), probe("sixel")).kind == "blocks"


def test_forcing_a_protocol_trusts_the_user() -> None:
    g = detect("sixel", {}, Tty(), probe("none"))
    assert g.kind == "sixel" and "asked for" in g.reason


def test_without_the_extra_it_is_half_blocks_with_the_install_line() -> None:
    def missing() -> tuple[str, tuple[int, int], None]:
        raise ImportError("No module named 'textual_image'")

    g = detect("auto", {}, Tty(), missing)
    assert g.kind == "blocks" and "pip install 'nst-tui[images]'" in g.reason


def test_a_wrong_answer_is_half_blocks_never_a_crash() -> None:
    def garbled() -> tuple[str, tuple[int, int], None]:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    g = detect("auto", {}, Tty(), garbled)
    assert g.kind == "blocks" and "not understood" in g.reason
    # A cell size that makes no sense is the VT340's.
    assert detect("auto", {}, Tty(), probe("sixel", (0, 4000))).cell_px == DEFAULT_CELL_PX


def test_the_largest_sixel_answer_is_read_or_ignored() -> None:
    assert parse_max_px("\x1b[?2;0;1000;1000S") == (1000, 1000)
    for wrong in ("\x1b[?2;3;0S", "\x1b[?2;0;x;1S", "", "\x1b[?2;0;-1;5S"):
        assert parse_max_px(wrong) is None


def test_widgets_draw_half_blocks_unless_told() -> None:
    assert graphics.current().kind == "blocks"


# ---- a real pseudo-terminal that answers the queries wrongly -------------------------------
CHILD = """
import select, sys
from nst_tui.tui.graphics import detect
g = detect("auto")
left = select.select([sys.stdin], [], [], 0.3)[0]  # nothing of the answer left to read as keys
print("RESULT", g.kind, "|", g.reason, "| unread input:", bool(left), flush=True)
"""


def _result_line(out: bytes) -> bool:
    return b"RESULT" in out and b"\n" in out[out.index(b"RESULT") :]


def run_in_pty(answer: bytes, **env: str) -> str:
    """Run detection on a pseudo-terminal whose 'terminal' (this test) answers every query
    with `answer`; returns the child's RESULT line."""
    import pty

    pytest.importorskip("textual_image")
    master, slave = pty.openpty()
    # 48 rows, 160 columns of 9x18 pixels (a pty of 0x0 would fail textual-image's arithmetic).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 1440, 864))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "TMUX"}, "TERM": "xterm", **env},
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not _result_line(out):
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            out += chunk
            if b"\x1b[" in chunk or b"\x1b_G" in chunk:  # a query: answer it (wrongly)
                os.write(master, answer)
        proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = out.decode("utf-8", "replace")
    assert "RESULT" in text, (text, proc.stderr.read() if proc.stderr else b"")
    SENT.append(out)
    return text[text.index("RESULT") :].splitlines()[0]


SENT: list[bytes] = []  # what each run_in_pty's child wrote to its terminal


@pytest.mark.parametrize(
    "answer",
    [b"\x1b[?62;1;6;9;15;22c", b"garbage\xff\xfe", b"\xff\xfe\x1b[?4c", b"\x1b[?6", b""],
    ids=["no-sixel", "garbage", "not-utf8", "cut-short", "silence"],
)
def test_on_a_real_pty_a_wrong_answer_gives_half_blocks(answer: bytes) -> None:
    line = run_in_pty(answer)
    assert line.startswith("RESULT blocks |"), line
    assert line.endswith("unread input: False"), line


def test_on_a_real_pty_a_sixel_terminal_gets_sixel() -> None:
    # What xterm -ti vt340 answers to the device attributes query: 4 is sixel.
    line = run_in_pty(b"\x1b[?63;1;2;4;6;9;15;22c")
    assert line.startswith("RESULT sixel |"), line


def test_what_is_said_at_start() -> None:
    def missing() -> tuple[str, tuple[int, int], None]:
        raise ImportError("No module named 'textual_image'")

    # Half blocks without the extra, as ever: nothing to say.
    assert detect("auto", {}, Tty(), missing).notice is None
    assert detect("blocks", {}, Tty()).notice is None
    assert detect("auto", {}, Tty(), probe("sixel")).notice is None
    # Asked for and not drawn: said, with why.
    asked = detect("sixel", {}, Tty(), missing).notice
    assert asked is not None and "nst-tui[images]" in asked
    assert "not a terminal" in (detect("kitty", {}, io.StringIO()).notice or "")
    # tmux in the way: said, with where to read more.
    tmux = detect("auto", {"TMUX": "x"}, Tty(), probe("none")).notice
    assert tmux is not None and "tmux 3.4" in tmux and "real-pixels.md" in tmux


def test_in_tmux_only_the_sixel_question_is_asked() -> None:
    # tmux takes kitty's query (an APC string) for a window title and renames the window.
    line = run_in_pty(b"\x1b[?1;2c", TMUX="/tmp/tmux-0/default,1,0")
    assert line.startswith("RESULT blocks |") and "tmux" in line, line
    assert b"\x1b_G" not in SENT[-1] and b"\x1b[c" in SENT[-1]
    line = run_in_pty(b"\x1b[?1;2;4c", TMUX="/tmp/tmux-0/default,1,0")  # tmux 3.4 with sixel
    assert line.startswith("RESULT sixel |"), line
