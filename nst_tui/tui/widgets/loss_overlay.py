"""Two runs' loss curves, one bar line each per term, on shared scales.

Both lines of a term share the y scale (log10 when the two together span two
decades or more) and the x scale (iterations), so a longer run draws further
right and a lower bar is a lower loss, whichever run it belongs to.
"""

from __future__ import annotations

import math

from rich.console import RenderableType
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from nst_tui.tui.messages import LossRow
from nst_tui.tui.widgets.loss_panel import LOG_SPAN, TERMS, short

BARS = "▁▂▃▄▅▆▇█"
COLORS = ("#4ea1ff", "#ffa03c")  # run A, run B: also their labels' colours
NAME_WIDTH, VALUE_WIDTH = 11, 10
Scale = tuple[float, float, bool]  # low, high, log10


def shared_scale(series: list[list[float]]) -> Scale:
    """Low and high ends over every series, and whether they are log10."""
    values = [v for s in series for v in s]
    if not values:
        return 0.0, 1.0, False
    positive = all(v > 0 for v in values)
    if positive and max(values) / min(values) >= LOG_SPAN:
        return math.log10(min(values)), math.log10(max(values)), True
    return min(values), max(values), False


def bar_line(points: list[tuple[int, float]], width: int, last_iteration: int, scale: Scale) -> str:
    """`points` (iteration, value) as `width` bars; a column holds the latest value by then."""
    lo, hi, log = scale
    cells: list[str] = []
    index, value = 0, None
    for column in range(width):
        until = (column + 1) * last_iteration / width
        while index < len(points) and points[index][0] <= until:
            value = points[index][1]
            index += 1
        if value is None or column * last_iteration / width >= points[-1][0]:
            cells.append(" ")  # before the first logged point, or after the run ended
            continue
        v = math.log10(value) if log else value
        ratio = (v - lo) / (hi - lo) if hi > lo else 0.5
        cells.append(BARS[round(min(max(ratio, 0.0), 1.0) * (len(BARS) - 1))])
    return "".join(cells)


class LossOverlay(Widget):
    """Per term: a bar line for run A above one for run B, with each one's last value."""

    DEFAULT_CSS = """
    LossOverlay {
        height: auto;
    }
    """

    def __init__(self, a: list[LossRow], b: list[LossRow], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series = tuple(
            {t: [(it, losses[t]) for it, losses in rows if t in losses] for t in TERMS}
            for rows in (a, b)
        )

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2 * len(TERMS)

    def lines(self, width: int) -> list[tuple[str, str, str]]:
        """Per line: the name cell, the bars and the last value (two lines per term)."""
        bars_width = max(1, width - NAME_WIDTH - VALUE_WIDTH)
        last = max((p[-1][0] for s in self.series for p in s.values() if p), default=1) or 1
        out = []
        for term in TERMS:
            pair = [s[term] for s in self.series]
            scale = shared_scale([[v for _, v in points] for points in pair])
            for i, points in enumerate(pair):
                name = (f"{term} log" if scale[2] else term) if i == 0 else ""
                value = short(points[-1][1]) if points else "-"
                out.append((name, bar_line(points, bars_width, last, scale), value))
        return out

    def render(self) -> RenderableType:
        text = Text(no_wrap=True, overflow="crop")
        for n, (name, bars, value) in enumerate(self.lines(self.content_size.width)):
            color = COLORS[n % 2]
            text.append(name.ljust(NAME_WIDTH), style="dim")
            text.append(bars, style=color)
            text.append(value.rjust(VALUE_WIDTH), style=color)
            if n < 2 * len(TERMS) - 1:
                text.append("\n")
        return text
