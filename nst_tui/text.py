"""User and file text shown as text: the one place that decides how a control character
(an ANSI escape, an OSC that sets the terminal's title, a bell) is written out, and how a
label becomes part of a folder's name.

The CLI and the dashboard both show `\\x1b[2J`, never send it: a preset's description,
a file name or a path can hold anything, and a terminal obeys what reaches it.
"""

from __future__ import annotations

import re


def visible(text: str, *, lines: bool = False) -> str:
    """Control characters written out as Python escapes (`\\x1b`, `\\t`), not sent; with
    `lines`, line breaks stay line breaks (a message of several lines)."""
    if lines:
        return "\n".join(visible(line) for line in text.split("\n"))
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def safe_label(text: str) -> str:
    """A folder-name fragment that cannot leave the outputs folder."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")[:40]
    return label or "run"
