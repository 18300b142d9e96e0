"""Live sparklines of the loss terms, each with its latest value.

A series that spans two decades or more is drawn on a log scale (and says
so), otherwise the first iterations would flatten everything after them.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from nst_tui.tui.messages import LossRow

TERMS = ("total", "content", "style", "tv")
LOG_SPAN = 100.0  # max/min ratio above which a series is drawn in log10


def scaled(values: list[float]) -> tuple[list[float], bool]:
    """The values to draw and whether they are log10."""
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and positive and max(positive) / min(positive) >= LOG_SPAN:
        return [math.log10(v) for v in values], True
    return list(values), False  # a new list: the Sparkline redraws only when data changes


def short(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.2e}"


class LossPanel(Vertical):
    """One row per term: name, sparkline, latest value."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: dict[str, list[float]] = {t: [] for t in TERMS}

    def compose(self) -> ComposeResult:
        for term in TERMS:
            with Horizontal(classes="loss-row"):
                yield Label(term, id=f"loss-name-{term}", classes="loss-name")
                yield Sparkline([], id=f"spark-{term}")
                yield Label("-", id=f"loss-value-{term}", classes="loss-value")

    def reset(self) -> None:
        self.series = {t: [] for t in TERMS}
        self._redraw()

    def replace(self, rows: list[LossRow]) -> None:
        """Show exactly these rows (another sweep cell's, say)."""
        self.series = {t: [] for t in TERMS}
        self.add(rows)

    def add(self, rows: list[LossRow]) -> None:
        for _, losses in rows:
            for term in TERMS:
                self.series[term].append(losses.get(term, 0.0))
        self._redraw()

    def _redraw(self) -> None:
        for term in TERMS:
            values = self.series[term]
            drawn, log = scaled(values)
            self.query_one(f"#spark-{term}", Sparkline).data = drawn
            self.query_one(f"#loss-name-{term}", Label).update(f"{term} log" if log else term)
            latest = short(values[-1]) if values else "-"
            self.query_one(f"#loss-value-{term}", Label).update(latest)
