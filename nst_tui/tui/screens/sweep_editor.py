"""Type a sweep table in the dashboard: `field = [values], field = [values]`.

The line is the body of a preset's `[sweep]` table written inline, so what works
in a preset works here, and ctrl+s saves it with the form. It is checked as a
sweep over the form's values (unknown fields, bad values, too many cells) before
the dialog closes; an empty line removes the sweep.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from nst_tui.config import toml_value
from nst_tui.errors import NSTError
from nst_tui.presets import check_sweep
from nst_tui.tui.plain import plain
from nst_tui.tui.widgets.text_input import TextInput

SweepTable = dict[str, list[Any]]
Check = Callable[[SweepTable], str]  # a summary of the table's cells; raises NSTError


def inline(table: SweepTable | None) -> str:
    return ", ".join(f"{k} = {toml_value(v)}" for k, v in (table or {}).items())


def parse_inline(text: str) -> SweepTable:
    """`lr = [0.01, 0.1], content_layers = [[0], [3]]` -> {"lr": [...], ...}."""
    if not text.strip():
        return {}
    try:
        table: dict[str, list[Any]] = tomllib.loads(f"sweep = {{ {text} }}")["sweep"]
    except (ValueError, RecursionError) as exc:
        raise NSTError(f"not a list of field = [values]: {exc}") from None
    check_sweep(table, "sweep")
    return table


class SweepEditor(ModalScreen[SweepTable | None]):
    """Dismisses with the new table ({} removes the sweep), or None when closed."""

    AUTO_FOCUS = "#sweep-line"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def __init__(self, table: SweepTable | None, check: Check) -> None:
        super().__init__()
        self.table = table
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(id="sweep-body", classes="modal-body"):
            yield Label("Sweep table: one run per combination of values", classes="modal-title")
            yield TextInput(
                inline(self.table),
                placeholder="e.g. content_layers = [[0], [1], [2]], optimizer = ['adam', 'lbfgs']",
                id="sweep-line",
            )
            yield Static("", id="sweep-error", classes="field-error", markup=False)
            yield Static(  # a Static wraps; a Label would cut the line at the modal's edge
                "field = [values], comma-separated, as in a preset's [sweep] table; "
                "empty removes the sweep · enter applies · escape closes",
                classes="modal-hint",
                markup=False,
            )

    @on(Input.Submitted)
    def _apply(self) -> None:
        text = self.query_one("#sweep-line", Input).value
        try:
            table = parse_inline(text)
            if table:
                self.check(table)
        except NSTError as exc:
            error = self.query_one("#sweep-error", Static)
            error.update(plain(exc, lines=True))  # it quotes values as typed
            error.add_class("-shown")
            return
        self.dismiss(table)

    def action_cancel(self) -> None:
        self.dismiss(None)
