"""Pick a preset: every preset found, with its description; invalid ones say why."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from nst_tui import presets
from nst_tui.errors import NSTError
from nst_tui.text import visible
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
                why = (f"(invalid: {visible(' '.join(str(exc).split()))})", "red")
                text = Content.assemble(visible(path.stem), "  ", why)
                options.append(Option(text, id=None, disabled=True))
                continue
            # Styled parts, not markup: a name or a description is shown as it is written
            # (`[bold]` stays `[bold]`, an escape is shown as `\x1b`).
            line = preset.description.splitlines()[0] if preset.description else ""
            text = Content.assemble((visible(preset.name), "bold"), "  ", (visible(line), "dim"))
            if preset.sweep:
                text += Content.styled(f"  (sweep: {visible(table_summary(preset.sweep))})", "i")
            options.append(Option(text, id=str(path)))
        return options

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
