"""A job's news for the dashboard, and the box it waits in until the UI thread takes it.

The relay (nst_tui.tui.relay) puts news into its job's `NewsBox` as the job's events
arrive; the App takes all of it at once when a `NewsReady` message reaches it. News
merges in one place, `merged`, which goes over the fields whatever they are: a field
added to `CellNews` or `JobNews` survives a merge with no code naming it.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nst_tui.tui.pace import Pace

LossRow = tuple[int, dict[str, float]]  # (iteration, losses)


@dataclass
class CellNews:
    """What one cell logged since the dashboard last took its news."""

    rows: list[LossRow] = field(default_factory=list)
    iteration: int = 0
    preview: Any = field(default=None, repr=False)  # a small PIL image, or None
    status: str = ""  # finished | cancelled | failed once the cell has ended


@dataclass
class JobNews:
    """Every cell's news, and the count over the whole job (a single run: cell 0)."""

    cells: dict[int, CellNews] = field(default_factory=dict)
    completed: int = 0  # (cell-)iterations done
    total: int = 0
    rate: float = 0.0  # (cell-)iterations per second
    # A single run's counted work per second (engine/flops.py) and its fraction of the
    # device's datasheet peak; bytes reserved on its CUDA device.
    tflop_s: float | None = None
    of_peak: float | None = None
    gpu_memory: int | None = None


N = TypeVar("N", CellNews, JobNews)


def merged(older: N, newer: N) -> N:
    """`older` then `newer` as one, field by field: a list is joined (older first), a dict
    merged key by key (news under one key merged the same way), and any other field is
    newer's unless newer left it at its default (it had nothing to say). Neither changes."""
    values = {}
    for f in dataclasses.fields(older):
        old, new = getattr(older, f.name), getattr(newer, f.name)
        if isinstance(old, list):
            values[f.name] = old + new
        elif isinstance(old, dict):
            both = {**old, **new}
            for key in old.keys() & new.keys():
                if dataclasses.is_dataclass(new[key]):
                    both[key] = merged(old[key], new[key])
            values[f.name] = both
        else:
            values[f.name] = old if _unset(new, f) else new
    return type(older)(**values)


def _unset(value: object, f: dataclasses.Field[Any]) -> bool:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return value is default or (type(value) is type(default) and value == default)


class NewsBox:
    """A job's news that the dashboard has not taken yet: the relay's threads put, the UI
    thread takes. The job-wide counts stay after a take, so that news with no count (a
    preview made later) does not blank them."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace  # how often the relay hands news over; the UI thread feeds it
        self._lock = threading.Lock()
        self._news = JobNews()

    def put(self, news: JobNews) -> None:
        with self._lock:
            self._news = merged(self._news, news)

    def take(self) -> JobNews | None:
        """Everything since the last take; None when an earlier take left nothing."""
        with self._lock:
            news = self._news
            if not news.cells:
                return None
            self._news = dataclasses.replace(news, cells={})
            return news
