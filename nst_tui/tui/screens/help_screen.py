"""The help screen: the keys and panes, from help_screen.md beside this file and the
bindings (nst_tui/tui/keys.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

from nst_tui.tui.keys import PLACES, table


def help_text() -> str:
    """help_screen.md with each `{keys PLACE}` line replaced by that place's key table
    (the bindings are the one place keys are written)."""
    text = Path(__file__).with_name("help_screen.md").read_text(encoding="utf-8")
    for place in PLACES:
        text = text.replace(f"{{keys {place}}}", table(place))
    return text


HELP_TEXT = help_text()


class HelpScreen(ModalScreen[None]):
    AUTO_FOCUS = "#help-body"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Markdown(HELP_TEXT)
        yield Footer()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
