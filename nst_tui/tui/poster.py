"""A single-slot mailbox with its own thread: the dashboard's listeners hand work off.

The job's relay is called on the optimizer's thread, and what it hands the dashboard
first needs PIL (a canvas shrunk to a preview, every cell's frame to a tile). A
`Poster` takes that work off the optimizer: `send` puts an item in one slot, merging
it into the item already waiting there (so a slow UI never builds a backlog; `merge`
says what is kept: the relay's keeps each cell's newest canvas), and a thread of its
own `deliver`s each item in turn. `drain` delivers what is pending and ends the thread
before it returns, so a run's last messages go before its worker returns and a
status line never overtakes the rows logged before it. The thread also ends after
IDLE_S with nothing to do (a run that raises never drains); the next `send` starts
another. A delivery that raises does not stop later ones: its error is kept and
raised in the caller's thread, by the next `raise_error` or `drain`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# The thread ends after this long without an item: a run that raises never drains,
# and its listener must not keep a thread. The next send starts another.
IDLE_S = 1.0


class Poster(Generic[T]):
    def __init__(self, deliver: Callable[[T], None], merge: Callable[[T, T], T], name: str) -> None:
        self.deliver = deliver  # called on the poster's thread, one item at a time
        self.merge = merge  # (waiting, newer) -> one item with both
        self.name = name  # the thread's
        self._mail = threading.Condition()  # guards the four below
        self._slot: T | None = None
        self._thread: threading.Thread | None = None
        self._draining = False
        self._error: Exception | None = None  # a delivery's, raised in the caller's thread

    def send(self, item: T) -> None:
        """Queue `item` (merged into the one waiting, if any); never waits on delivery."""
        with self._mail:
            self._slot = item if self._slot is None else self.merge(self._slot, item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._mail.notify()

    def drain(self) -> None:
        """Deliver what is pending, end the thread, then raise a delivery's error."""
        with self._mail:
            thread, self._draining = self._thread, True
            self._mail.notify()
        if thread is not None:
            thread.join()
        with self._mail:
            self._draining = False
        self.raise_error()

    def raise_error(self) -> None:
        """Raise (once) the first error a delivery raised since the last call."""
        with self._mail:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        """The poster's thread: each item in turn, until drained or idle."""
        while (item := self._take()) is not None:
            try:
                self.deliver(item)
            except Exception as exc:  # raised in the caller's thread; later items still go
                with self._mail:
                    self._error = self._error or exc

    def _take(self) -> T | None:
        """The next item; None (and the thread ends) once draining or idle with none."""
        with self._mail:
            self._mail.wait_for(lambda: self._slot is not None or self._draining, IDLE_S)
            item, self._slot = self._slot, None
            if item is None:
                self._thread = None
            return item
