"""How often a run's relay may post to the dashboard: a budget of the UI thread's time.

Drawing an update (canvas, sparklines, labels) takes the UI thread tens of
milliseconds, and while it draws it holds the GIL the optimizer's thread needs to
launch its next step. A fixed rate is either too slow for a slow run or too
costly for a fast one (a GPU makes frames far faster than a terminal can show
them), so the interval follows what updates cost: the UI thread's CPU time
between two updates, over the share of its time the dashboard may take.

Written on the UI thread (`drawn`), read on the worker's (`interval`): one float,
replaced whole, so no lock is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FASTEST = 1 / 20  # s between a run's posts: at most 20 a second, more is not seen
SWEEP_FASTEST = 1 / 10  # a sweep's: a grid of tiles is dearer to draw
SLOWEST = 1.0  # s: the dashboard stays live however slow its drawing is
BUDGET = 0.05  # share of wall time the UI thread may spend on a run's updates
SMOOTHING = 0.5  # weight of the newest cost in its running average


class Pace:
    def __init__(
        self,
        fastest: float = FASTEST,
        budget: float = BUDGET,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.fastest = fastest
        self.budget = budget
        self.cpu_clock = cpu_clock  # the calling thread's CPU time: the UI thread's
        self.interval = fastest
        self.cost: float | None = None  # running average of UI CPU seconds per update
        self._last: float | None = None

    def drawn(self) -> None:
        """Call on the UI thread as each update arrives: the UI's CPU time since the
        previous one is what the previous update cost (its handler and its repaint)."""
        now = self.cpu_clock()
        if self._last is not None:
            spent = now - self._last
            self.cost = (
                spent if self.cost is None else (SMOOTHING * spent + (1 - SMOOTHING) * self.cost)
            )
            self.interval = min(SLOWEST, max(self.fastest, self.cost / self.budget))
        self._last = now
