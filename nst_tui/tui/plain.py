"""User and file text for a widget: read as text, never as markup, with its control
characters written out (`\\x1b`), so neither a `[/x]` nor an escape sequence in a name,
a path or a description reaches Textual's markup parser or the terminal."""

from __future__ import annotations

from textual.content import Content

from nst_tui.text import visible


def plain(text: object, *, lines: bool = False) -> Content:
    """`text` as it is (`str()` of it), for a Label, a Static, a border title, a table cell;
    with `lines`, its line breaks stay line breaks."""
    return Content(visible(str(text), lines=lines))
