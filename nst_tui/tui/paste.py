"""A bracketed paste is text, whatever it holds.

Textual's terminal parser reads an escape inside a paste as the start of a key's
sequence and, not finding one, replays the rest of the paste as keys: pasting
`abc\\x1b[Adef\\x10ghi` typed `abc`, then `^ [ A d e f`, ctrl+p (the palette) and `ghi`.
`PasteParser` takes everything between the terminal's paste brackets as one
`events.Paste`; `use_paste_parser` makes a driver's input thread use it. What a widget
then inserts is escaped (`NSTApp.on_event`): the paste is shown, never sent.
"""

from __future__ import annotations

import sys
from collections.abc import Generator

from textual import events
from textual._parser import ParseError, Peek1, Read1, TokenCallback
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.message import Message

from nst_tui.text import visible

PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"


def pasted(text: str) -> str:
    """A paste as an input inserts it: its control characters escaped, lines kept."""
    return visible(text.replace("\r\n", "\n").replace("\r", "\n"), lines=True)


class PasteParser(XTermParser):
    """Textual's parser, but a bracketed paste is read here, to its closing bracket."""

    def parse(self, token_callback: TokenCallback[Message]) -> Generator[Read1 | Peek1, str, None]:
        def keys(token: Message) -> None:
            if not isinstance(token, events.Paste):  # every paste is this parser's
                token_callback(token)

        inner = super().parse(keys)
        request = next(inner)
        recent = ""  # the last characters in, to see a paste's opening bracket
        while True:
            try:
                character = yield request
            except ParseError as error:  # a timeout (a lone escape key) or the end
                try:
                    request = inner.throw(error)
                except StopIteration:
                    return
                continue
            try:
                request = inner.send(character)  # the bracket too: it ends a pending key
            except StopIteration:
                return
            recent = (recent + character)[-len(PASTE_START) :]
            if recent != PASTE_START:
                continue
            text = ""
            while not text.endswith(PASTE_END):
                try:
                    text += yield self.read1()
                except ParseError:
                    return  # the terminal went away mid-paste
            token_callback(events.Paste(text[: -len(PASTE_END)].replace("\x00", "")))
            try:
                for character in PASTE_END:  # Textual's parser leaves its paste state
                    request = inner.send(character)
            except StopIteration:
                return
            recent = ""


def use_paste_parser(driver_class: type[Driver]) -> type[Driver]:
    """Have `driver_class`'s input thread read with `PasteParser` (the driver makes its
    parser from the name its module imported)."""
    module = sys.modules.get(driver_class.__module__)
    if module is not None and getattr(module, "XTermParser", None) is XTermParser:
        # A module's attributes are typed by what it defines; this one is replaced on purpose.
        module.XTermParser = PasteParser  # type: ignore[attr-defined]
    return driver_class
