"""A checkbox that reads right without colour: `X` when on, blank when off.

Textual draws the same `X` either way and tells them apart by colour only, which a
monochrome terminal (or NO_COLOR) does not show.
"""

from __future__ import annotations

from textual.widgets import Checkbox


class MarkedCheckbox(Checkbox):
    """Every on/off box of the dashboard: the layer toggles, the save dialog's overwrite."""

    # Checkbox declares BUTTON_INNER a class constant (its mark); a property, read where
    # Checkbox reads the constant, draws an X only when the box is on.
    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]
        return "X" if self.value else " "
