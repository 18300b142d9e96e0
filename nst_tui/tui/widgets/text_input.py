"""An Input that never sends its value's control characters to the terminal.

A path or a name loaded from a preset can hold an escape sequence (`\\x1b[2J` would clear
the screen). The value stays what it is (it names that file); it is drawn with each
control character as its one-cell picture (`␛` for escape), so the cursor and the
selection still fall on the characters they edit. What is pasted arrives escaped already
(`\\x1b`, see `NSTApp.on_event`).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import Input

# C0 and DEL as the Unicode control pictures; C1 (0x9b is a CSI) as the replacement mark.
PICTURES = {
    **{code: 0x2400 + code for code in range(0x20)},
    0x7F: 0x2421,
    **{code: 0xFFFD for code in range(0x80, 0xA0)},
}


def pictured(text: str) -> str:
    """`text` with each control character replaced by one printable character."""
    return text.translate(PICTURES)


class TextInput(Input):
    """Every text field of the dashboard (the form's, the dialogs')."""

    @property
    def _value(self) -> Text:
        # Textual's own drops some controls (a bell) and sends the rest (an escape): the
        # text it draws would no longer line up with the value, or would reach the terminal.
        if self.password:
            return super()._value
        return Text(pictured(self.value), no_wrap=True, overflow="ignore", end="")

    def _position_to_cell(self, position: int) -> int:
        # Textual counts a control character as no cell; its picture takes one.
        return cell_len(pictured(self.value[:position]))  # a tab, too: its picture
