"""User and file text shown as text: the one place that decides how a control character
(an ANSI escape, an OSC that sets the terminal's title, a bell) is written out.

The CLI and the dashboard both show `\\x1b[2J`, never send it: a preset's description,
a file name or a path can hold anything, and a terminal obeys what reaches it.
"""

from __future__ import annotations


def visible(text: str, *, lines: bool = False) -> str:
    """Control characters written out as Python escapes (`\\x1b`, `\\t`), not sent; with
    `lines`, line breaks stay line breaks (a message of several lines)."""
    if lines:
        return "\n".join(visible(line) for line in text.split("\n"))
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
