"""The dashboard's keys are written once, in the bindings: the help screen, the README's
key table and the command palette are made from them."""

from __future__ import annotations

from pathlib import Path

from nst_tui.tui.app import NSTApp
from nst_tui.tui.keys import APP_BINDINGS, PLACES, SHOWN, readme_table, with_readme_table
from nst_tui.tui.screens.help_screen import HELP_TEXT

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_key_table_is_the_bindings() -> None:
    text = README.read_text(encoding="utf-8")
    assert with_readme_table(text) == text, (
        "README.md's key table is out of date: run `python -m nst_tui.tui.keys`"
    )
    assert readme_table() in text


def test_the_help_shows_every_binding_with_its_text() -> None:
    assert "{keys" not in HELP_TEXT
    for bindings in PLACES.values():
        for binding in bindings:
            for key in binding.key.split(","):  # "escape,q": each key shown
                assert f"`{SHOWN.get(key, key)}`" in HELP_TEXT, binding.key
            if binding.tooltip:
                assert binding.tooltip in HELP_TEXT, binding.key


def test_a_changed_tooltip_changes_the_readme_table(monkeypatch) -> None:
    from textual.binding import Binding

    from nst_tui.tui import keys

    changed = [Binding("ctrl+r", "run", "Run", tooltip="Run it, differently"), *APP_BINDINGS[1:]]
    monkeypatch.setitem(keys.PLACES, "anywhere", changed)
    text = README.read_text(encoding="utf-8")
    assert "Run it, differently" in with_readme_table(text) != text


async def test_the_palette_offers_every_app_key() -> None:
    app = NSTApp(warm_up=False)
    async with app.run_test(size=(120, 36)):
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
    first = {}
    for binding in APP_BINDINGS:  # one command per action, named by its first key
        first.setdefault(binding.action, binding)
    for action, binding in first.items():
        if action not in ("quit", "ask_quit"):
            assert f"({binding.key})" in commands[binding.description], binding.key
    assert "Quit" in commands and "Compare runs" in commands
