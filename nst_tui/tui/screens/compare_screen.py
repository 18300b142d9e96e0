"""Two runs of the history side by side: final images, differing fields, loss curves."""

from __future__ import annotations

from typing import ClassVar

from PIL import Image
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label

from nst_tui.config import toml_value
from nst_tui.text import visible
from nst_tui.tui.history_row import HistoryRow
from nst_tui.tui.widgets.loss_overlay import COLORS, LossOverlay
from nst_tui.tui.widgets.pixels import PixelView

MAX_VALUE = 40  # characters of one value (a long path) kept in the table


def shown(value: object) -> str:
    text = visible(toml_value(value))
    return text if len(text) <= MAX_VALUE else "…" + text[-MAX_VALUE:]


def title(record: HistoryRow) -> str:
    wall = f" · {record.wall_time:.1f}s" if record.wall_time is not None else ""
    return visible(f"run {record.run_id} · {record.label} · {record.status}{wall}")


class CompareScreen(ModalScreen[None]):
    """Run A (blue) and run B (orange): escape closes."""

    AUTO_FOCUS = "#compare-diff"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def __init__(
        self, a: HistoryRow, b: HistoryRow, image_a: Image.Image | None, image_b: Image.Image | None
    ) -> None:
        super().__init__()
        self.runs = (a, b)
        self.images = (image_a, image_b)
        self.differences = a.config.differences(b.config)

    def compose(self) -> ComposeResult:
        a, b = self.runs
        n = len(self.differences)
        with Vertical(id="compare-body"):
            yield Label(
                f"Run {a.run_id} vs run {b.run_id}: {n} differing parameter{'s' * (n != 1)}",
                classes="modal-title",
            )
            with Horizontal(id="compare-images"):
                for record, image, color in zip(self.runs, self.images, COLORS, strict=True):
                    with Vertical(classes="compare-side"):
                        yield Label(Text("■ " + title(record), style=color))
                        view = PixelView("no final image", id=f"compare-image-{record.run_id}")
                        view.image = image
                        yield view
            yield DataTable(id="compare-diff", cursor_type="row", zebra_stripes=True)
            yield LossOverlay(a.rows, b.rows, id="compare-losses")
            yield Label("escape closes", classes="modal-hint")
        yield Footer()

    def on_mount(self) -> None:
        a, b = self.runs
        table = self.query_one("#compare-diff", DataTable)
        table.add_column("field", key="field")
        table.add_column(Text(f"run {a.run_id}", style=COLORS[0]), key="a")
        table.add_column(Text(f"run {b.run_id}", style=COLORS[1]), key="b")
        for name in self.differences:
            values = (shown(getattr(r.config, name)) for r in self.runs)
            table.add_row(Text(name), *(Text(v) for v in values), key=name)
        if not self.differences:
            table.add_row(Text("(none)"), Text("same config"), Text("same config"))

    def action_close(self) -> None:
        self.dismiss(None)
