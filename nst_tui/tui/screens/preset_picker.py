"""Pick a preset: every preset found, with its description; invalid ones say why."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nst_tui import presets
from nst_tui.errors import NSTError
from nst_tui.tui.job_state import table_summary


class PresetPicker(ModalScreen[str | None]):
    """Dismisses with a preset path, or None."""

    AUTO_FOCUS = "#preset-list"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-body", classes="modal-body"):
            yield Label("Load a preset", classes="modal-title")
            yield OptionList(*self._options(), id="preset-list")
            yield Label("enter loads · escape closes", classes="modal-hint")

    @staticmethod
    def _options() -> list[Option]:
        options = []
        for path in presets.all_paths():
            try:
                preset = presets.load(str(path))
            except NSTError as exc:
                text = f"{escape(path.stem)}  [red](invalid: {escape(str(exc))})[/red]"
                options.append(Option(text, id=None, disabled=True))
                continue
            line = preset.description.splitlines()[0] if preset.description else ""
            sweep = (
                f"  [i](sweep: {escape(table_summary(preset.sweep))})[/i]" if preset.sweep else ""
            )
            text = f"[b]{escape(preset.name)}[/b]  [dim]{escape(line)}[/dim]{sweep}"
            options.append(Option(text, id=str(path)))
        return options

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
