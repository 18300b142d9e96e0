"""Save the form as a preset in the user's preset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from nst_tui import presets
from nst_tui.config import Config
from nst_tui.errors import NSTError
from nst_tui.tui.plain import plain
from nst_tui.tui.widgets.checkbox import MarkedCheckbox
from nst_tui.tui.widgets.text_input import TextInput


class SavePreset(ModalScreen[Path | None]):
    """Dismisses with the written file, or None."""

    AUTO_FOCUS = "#preset-name"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def __init__(
        self, config: Config, name: str = "", sweep: dict[str, list[Any]] | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.suggested = name
        self.sweep = sweep or None  # saved as the preset's [sweep] table

    def compose(self) -> ComposeResult:
        with Vertical(id="save-body", classes="modal-body"):
            yield Label(plain(f"Save as a preset in {presets.user_dir()}"), classes="modal-title")
            if self.sweep:
                fields = ", ".join(self.sweep)
                yield Label(plain(f"with its [sweep] table over {fields}"), classes="modal-hint")
            yield TextInput(self.suggested, placeholder="name", id="preset-name")
            yield TextInput(placeholder="description (optional)", id="preset-description")
            yield MarkedCheckbox("overwrite an existing preset", id="preset-overwrite")
            yield Static("", id="save-error", classes="field-error")
            yield Label("enter saves · escape closes", classes="modal-hint")

    @on(Input.Submitted)
    def _save(self) -> None:
        name = self.query_one("#preset-name", Input).value.strip()
        description = self.query_one("#preset-description", Input).value.strip()
        overwrite = self.query_one("#preset-overwrite", MarkedCheckbox).value
        try:
            path = presets.save(
                self.config, name, description, overwrite=overwrite, sweep=self.sweep
            )
        except NSTError as exc:
            error = self.query_one("#save-error", Static)
            error.update(plain(exc, lines=True))  # it quotes the name as typed
            error.add_class("-shown")
            return
        self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
