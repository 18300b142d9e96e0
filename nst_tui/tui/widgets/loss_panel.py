"""Live sparklines of the loss terms, each with its latest value.

A series that spans two decades or more is drawn on a log scale (and says
so), otherwise the first iterations would flatten everything after them.
The four sums are always shown; each layer's weighted term (content/conv4_1,
style/conv1_1, ...) gets a row of its own once it is first reported, shown
when the panel's layer rows are switched on.
"""

from __future__ import annotations

import math

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from nst_tui.tui.messages import LossRow

TERMS = ("total", "content", "style", "tv")
LOG_SPAN = 100.0  # max/min ratio above which a series is drawn in log10
SHORT_KIND = {"content": "con.", "style": "sty."}


def scaled(values: list[float]) -> tuple[list[float], bool]:
    """The values to draw and whether they are log10."""
    positive = [v for v in values if v > 0]
    if len(positive) == len(values) and positive and max(positive) / min(positive) >= LOG_SPAN:
        return [math.log10(v) for v in values], True
    return list(values), False  # a new list: the Sparkline redraws only when data changes


def short(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e5 or value == 0 else f"{value:.2e}"


def label_of(term: str) -> str:
    """ "style/conv1_1" -> "sty. conv1_1": fits the name column beside the sums."""
    kind, _, layer = term.partition("/")
    return f"{SHORT_KIND.get(kind, kind)} {layer}" if layer else term


class LossRowView(Horizontal):
    """One term: name, sparkline, latest value."""

    def __init__(self, term: str, *, layer: bool) -> None:
        super().__init__(classes="loss-row loss-layer-row" if layer else "loss-row")
        self.term = term
        self.name_label = Label(label_of(term), classes="loss-name")
        self.spark = Sparkline([])
        self.value_label = Label("-", classes="loss-value")
        if not layer:  # the sums keep ids: tests and styles address them
            self.name_label.id = f"loss-name-{term}"
            self.spark.id = f"spark-{term}"
            self.value_label.id = f"loss-value-{term}"

    def compose(self) -> ComposeResult:
        yield self.name_label
        yield self.spark
        yield self.value_label

    def show(self, values: list[float]) -> None:
        drawn, log = scaled(values)
        self.spark.data = drawn
        name = label_of(self.term)
        # Fixed-size cells: repaint them only (a layout pass redraws the whole screen).
        self.name_label.update(f"{name} log" if log else name, layout=False)
        self.value_label.update(short(values[-1]) if values else "-", layout=False)


class LossPanel(Vertical):
    """The four sums, then (when shown) one row per layer term."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: dict[str, list[float]] = {t: [] for t in TERMS}
        self.views: dict[str, LossRowView] = {}

    @property
    def layers_shown(self) -> bool:
        return self.has_class("-layers")

    def compose(self) -> ComposeResult:
        for term in TERMS:
            view = LossRowView(term, layer=False)
            self.views[term] = view
            yield view

    def toggle_layers(self) -> bool:
        """Show or hide the per-layer rows; returns whether they are shown now."""
        self.toggle_class("-layers")
        self._redraw()  # hidden rows are not kept drawn
        return self.layers_shown

    def reset(self) -> None:
        self._forget_layers()
        self._redraw()

    def replace(self, rows: list[LossRow]) -> None:
        """Show exactly these rows (another sweep cell's, say)."""
        self._forget_layers()
        self.add(rows)

    def add(self, rows: list[LossRow]) -> None:
        for _, losses in rows:
            for term in losses:
                if term not in self.series:
                    # A term first seen late (never, in one run) starts where it appears.
                    self.series[term] = []
                    self.views[term] = LossRowView(term, layer=True)
                    self.mount(self.views[term])
            for term, values in self.series.items():
                values.append(losses.get(term, 0.0))
        self._redraw()

    def _forget_layers(self) -> None:
        for term in [t for t in self.views if t not in TERMS]:
            self.views.pop(term).remove()
        self.series = {t: [] for t in TERMS}

    def _redraw(self) -> None:
        shown = self.layers_shown
        for term, view in self.views.items():
            if shown or term in TERMS:
                view.show(self.series[term])
