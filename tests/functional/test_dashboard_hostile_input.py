"""The dashboard under hostile text and keys (issue 24): markup in names and paths, escape
sequences in presets and pastes, a key-mashing user, a crash. Every input is made here;
the app must keep running, and no escape of the user's may reach the terminal."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from conftest import snapshot_config
from PIL import Image
from test_dashboard import SIZE, make_app
from textual import events
from textual.app import App
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, OptionList

from nst_tui import presets
from nst_tui.tui.app import NSTApp
from nst_tui.tui.job_state import JobState
from nst_tui.tui.screens.file_picker import FilePicker
from nst_tui.tui.screens.preset_picker import PresetPicker
from nst_tui.tui.screens.save_preset import SavePreset

ESC = "\x1b"
CLEAR = "\x1b[2J"  # clears the screen
TITLE = "\x1b]0;pwned\x07"  # an OSC: sets the terminal's title


def screen_text(app: App[Any]) -> str:
    """What the current screen sends to the terminal as text (styles and cursor moves
    are Textual's own control segments, left out)."""
    update = app.screen._compositor.render_full_update()
    return "\n".join(
        "".join(seg.text for strip in line for seg in strip if not seg.control)
        for line in update.strips
    )


def assert_no_escape(app: App[Any]) -> str:
    text = screen_text(app)
    assert ESC not in text, [line for line in text.splitlines() if ESC in line]
    return text


def palettes(app: App[Any]) -> int:
    return sum(isinstance(s, CommandPalette) for s in app.screen_stack)


def image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 16), "teal").save(path)
    return path


async def wait_for(pilot: Pilot, condition: Any, timeout: float = 60.0) -> None:
    waited = 0.0
    while not condition():
        assert waited < timeout, "timed out"
        await pilot.pause(0.05)
        waited += 0.05


# ---- markup -----------------------------------------------------------------------------


async def test_markup_in_a_name_a_folder_and_the_presets_folder_is_shown_as_text(
    tmp_path: Path, monkeypatch, request
) -> None:
    # A short root: the dialog shows the whole path only while it fits (pytest-xdist's
    # workers add a folder to tmp_path).
    root = Path(tempfile.mkdtemp(prefix="nst-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    folder = root / "p[/x]" / "presets"
    monkeypatch.setenv("NST_TUI_PRESETS", str(folder))
    picture = image(tmp_path / "x[/b]" / "[bold]cat.png")  # folders x[ and b]: x[/b]
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=(200, 40)) as pilot:  # room for the long paths
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SavePreset)
        assert f"Save as a preset in {folder}" in screen_text(app)
        await pilot.press(*"a[/x]", "enter")
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, SavePreset)
        error = str(app.screen.query_one("#save-error").render())
        assert "preset name 'a[/x]'" in error and "a[/x]" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()

        field = app.form.widget("content_image")
        field.value = str(picture)
        field.focus()
        await pilot.press("ctrl+f")
        await pilot.pause(0.3)
        assert app.is_running and isinstance(app.screen, FilePicker)
        text = screen_text(app)
        assert str(picture.parent) in text and "[bold]cat.png" in text
        await pilot.press("backspace")  # up a folder: the title follows
        await pilot.pause(0.3)
        assert app.is_running and str(tmp_path) in screen_text(app)


async def test_markup_in_a_preset_name_and_a_notice_is_shown_as_text(tmp_path: Path) -> None:
    app = make_app(tmp_path, snapshot_config(iterations=2))
    app.session.preset_name = "[red]p[/red][/x]"
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        app._set_subtitle()
        app.notify("a notice [/x]", title="[/y]")
        await pilot.pause()
        text = screen_text(app)
        assert "preset: [red]p[/red][/x]" in text and "a notice [/x]" in text
        assert app.is_running


# ---- the command palette ------------------------------------------------------------------

MASH = [  # weighted to the keys that open and close dialogs
    *("ctrl+p", "ctrl+p", "f2", "f2", "f1", "escape", "ctrl+o", "ctrl+s"),
    *("enter", "tab", "down", "pagedown", "a", "space", "ctrl+t", "ctrl+g"),
]


async def test_mashed_keys_never_open_a_second_palette(tmp_path: Path) -> None:
    # Before: a dialog opened over the palette (f1, f2: priority keys), then ctrl+p pushed a
    # second palette under the same id: DuplicateIds, the app gone (3 of 3 seeds).
    for seed in (0, 1, 3):  # each crashed before (DuplicateIds), within 60 keys
        keys = random.Random(seed)
        app = make_app(tmp_path, snapshot_config(iterations=2))
        async with app.run_test(size=SIZE) as pilot:
            for i in range(60):
                await pilot.press(keys.choice(MASH))
                assert app.is_running, f"seed {seed}: died at key {i}"
                assert palettes(app) <= 1
                assert sum(s.is_modal for s in app.screen_stack) <= 1, app.screen_stack


async def test_no_dialog_over_the_palette_and_no_second_one_while_it_closes(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert palettes(app) == 1
        await pilot.press("f2", "f1", "ctrl+p")
        await pilot.pause()
        assert [type(s) for s in app.screen_stack][1:] == [CommandPalette]
        app.pop_screen()  # closing: off the stack, still mounted for a moment
        app.action_command_palette()  # a ctrl+p in that moment
        await pilot.pause()
        assert app.is_running and palettes(app) == 0
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.is_running and palettes(app) == 1


# ---- escapes --------------------------------------------------------------------------------


async def test_escapes_in_presets_and_paths_are_shown_not_sent(tmp_path: Path) -> None:
    description = f"{TITLE}[bold]b[/bold] {CLEAR}gone"
    saved = presets.save(snapshot_config(iterations=2), "evil", description)
    evil = saved.rename(saved.with_name(f"{CLEAR}evil.toml"))
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PresetPicker)
        text = assert_no_escape(app)
        assert r"\x1b[2Jevil  \x1b]0;pwned\x07[bold]b[/bold] \x1b[2Jgone" in text
        options = app.screen.query_one(OptionList)
        index = next(
            i for i in range(options.option_count) if options.get_option_at_index(i).id == str(evil)
        )
        options.highlighted = index
        await pilot.press("enter")
        await pilot.pause()
        assert app.session.preset_name == f"{CLEAR}evil"
        assert r"preset: \x1b[2Jevil" in assert_no_escape(app)

        app.form.widget("content_image").value = f"{CLEAR}{TITLE}.png"  # no such file
        await pilot.pause(0.8)  # the thumbnail says the file is missing, quoting it
        text = assert_no_escape(app)
        assert "␛[2J␛]0;pwned␇.png" in text  # in the field: a picture per control character
        await pilot.press("ctrl+r")  # blocked: the notice quotes the path
        await pilot.pause()
        assert not app.session.jobs and "Run blocked" in screen_text(app)
        assert r"\x1b[2J\x1b]0;pwned\x07.png" in assert_no_escape(app)


async def test_the_picker_shows_a_description_as_written(tmp_path: Path) -> None:
    # Rich's escape() read by Textual's markup: `\\[` doubled, a last `\\` ate `[/dim]`.
    description = "\\[bold]b[/bold], [/x] in C:\\dir\\"
    presets.save(snapshot_config(iterations=2), "bolder", description)
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        line = next(t for t in screen_text(app).splitlines() if "bolder" in t)
        assert f"bolder  {description} " in line and "[/dim]" not in line


# ---- pastes -------------------------------------------------------------------------------


async def test_a_paste_is_text_even_with_escapes_in_it(tmp_path: Path) -> None:
    pasted = "abc\x1b[Adef\x10ghi"  # \x10 is ctrl+p
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        # The parser the real terminal driver reads keys with, bytes as a terminal sends
        # a bracketed paste: before, the rest of the paste after its escape came as keys.
        parser = sys.modules[app.driver_class.__module__].XTermParser

        async def paste() -> None:
            for event in parser().feed(f"\x1b[200~{pasted}\x1b[201~"):
                app._driver.process_message(event)
            await pilot.pause()

        field = app.form.widget("content_image")
        field.focus()
        await pilot.press("ctrl+a", "ctrl+k")
        await paste()
        assert palettes(app) == 0 and app.focused is field
        assert field.value == r"abc\x1b[Adef\x10ghi"
        assert_no_escape(app)

        app.screen.set_focus(None)  # nothing focused: a paste goes nowhere, opens nothing
        await paste()
        assert app.is_running and palettes(app) == 0 and len(app.screen_stack) == 1


async def test_a_paste_into_a_dialog_is_escaped_too(tmp_path: Path) -> None:
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        app._driver.send_message(events.Paste(f"n{CLEAR}m"))
        await pilot.pause()
        assert app.screen.query_one("#preset-name", Input).value == r"n\x1b[2Jm"
        assert_no_escape(app)


# ---- without colour -------------------------------------------------------------------------


async def test_the_overwrite_box_reads_without_colour(tmp_path: Path) -> None:
    app = make_app(tmp_path, snapshot_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        box = app.screen.query_one("#preset-overwrite", Checkbox)

        def drawn() -> str:
            return next(line for line in screen_text(app).splitlines() if "overwrite" in line)

        off = drawn()
        box.focus()
        await pilot.press("space")
        await pilot.pause()
        assert box.value and drawn() != off
        assert "X" in drawn() and "X" not in off


# ---- a crash --------------------------------------------------------------------------------


def test_a_crash_exits_non_zero_says_where_and_records_the_run(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from nst_tui.tui import app as app_module

    presets.save(snapshot_config(iterations=5000, sav_freq=1), "long")
    monkeypatch.chdir(tmp_path)  # the dashboard writes to ./outputs

    def headless(self: NSTApp) -> int | None:  # as `run` does, on a loop of its own
        return asyncio.run(self.run_async(headless=True, size=SIZE))

    def boom(self: JobState, cells: object) -> None:
        raise RuntimeError("boom, a bug [/x] in the dashboard")

    monkeypatch.setattr(app_module.NSTApp, "run", headless)
    monkeypatch.setattr(JobState, "apply", boom)  # the run's first progress
    code = app_module.run_dashboard("long", start=True)

    err = capsys.readouterr().err
    assert code != 0
    assert "the dashboard stopped on an error: RuntimeError: boom, a bug [/x]" in err
    saved = Path(err.split("the traceback is printed above and in ", 1)[1].split("\n")[0])
    assert saved.is_file() and "RuntimeError: boom" in saved.read_text()
    folder = Path(err.split("was stopped (cancelled) and recorded in ", 1)[1].split("\n")[0])
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "cancelled" and info["iterations_done"] < 5000
