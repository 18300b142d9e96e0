"""One way to stop a job, for the CLI's signals and the dashboard's escape and signals."""

from __future__ import annotations

import io
import signal
import threading
import time

from nst_tui.cli import QuietWhenGone, _on_signals
from nst_tui.job.stop import CANCEL, HURRY, NOW, SAYS, escalate


def test_cancel_then_hurry_then_now() -> None:
    cancel, hurry = threading.Event(), threading.Event()
    assert escalate(cancel, hurry) == CANCEL and cancel.is_set() and not hurry.is_set()
    assert escalate(cancel, hurry) == HURRY and hurry.is_set()
    assert escalate(cancel, hurry) == NOW
    assert escalate(cancel, hurry) == NOW


def test_a_job_cancelled_elsewhere_is_hurried_by_the_first_request() -> None:
    cancel, hurry = threading.Event(), threading.Event()
    cancel.set()  # e.g. quitting from the dashboard cancelled it
    assert escalate(cancel, hurry) == HURRY


class StuckTerminal(io.StringIO):
    """A terminal whose writes wait until `free` is set: a console lock held elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.free = threading.Event()

    def write(self, text: str) -> int:
        self.free.wait(timeout=30)
        return super().write(text)


def test_a_stop_request_never_waits_for_the_terminal() -> None:
    # The handler runs wherever the main thread was: printing there could wait forever on
    # a console lock that thread holds mid-write. It only takes the step and queues what
    # to say; the notice is said once the terminal takes writes again.
    terminal = StuckTerminal()
    err = QuietWhenGone(file=terminal, highlight=False, emoji=False, width=100)
    cancel, hurry = threading.Event(), threading.Event()
    restore = _on_signals(cancel, hurry, err)
    try:
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        start = time.monotonic()
        handler(signal.SIGTERM, None)
        assert time.monotonic() - start < 1.0 and cancel.is_set()
        assert terminal.getvalue() == ""
        terminal.free.set()
    finally:
        restore()
    assert terminal.getvalue() == f"SIGTERM: {SAYS[CANCEL]}\n"
    assert signal.getsignal(signal.SIGTERM) is not handler  # the old handler is back


def test_a_terminal_gone_silences_the_console_instead_of_exiting() -> None:
    # Rich's console raises SystemExit(1) on a broken pipe, from wherever the write was:
    # mid-step or mid-record after an SSH session drops.
    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    err = QuietWhenGone(file=Gone())
    err.print("the terminal has gone")
    assert err.quiet
    err.print("and this is not written either")
