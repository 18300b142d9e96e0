"""The dashboard's keys, written once.

A binding's tooltip is its documentation: the help screen's key tables, the README's
key table (between its `keys:begin` / `keys:end` markers) and the command palette's
entries are all built from the bindings here and on the widgets that own them.
`python -m nst_tui.tui.keys` rewrites the README's table (a test says when it is due).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding

from nst_tui.tui.widgets.params_form import ParamsForm, PathInput
from nst_tui.tui.widgets.run_history import RunHistory
from nst_tui.tui.widgets.sweep_grid import SweepGrid

# The App's own keys. Priority keys work while a text field has the focus.
APP_BINDINGS: list[Binding] = [
    Binding("ctrl+r", "run", "Run", priority=True, tooltip=(
        "Run (or rerun) the form; a sweep: every cell. Blocked while a value or an input "
        "is invalid, with the field's message")),
    Binding("escape", "cancel_run", "Cancel", tooltip=(
        "Cancel: it stops within one iteration (one tile in tiles); what it made is saved, "
        "marked *cancelled*")),
    Binding("ctrl+o", "pick_preset", "Preset", priority=True, tooltip=(
        "Load a preset (a picker)")),
    Binding("ctrl+s", "save_preset", "Save", priority=True, tooltip=(
        "Save the form as a preset in your preset folder (a sweep: with its table)")),
    Binding("ctrl+n", "reset", "Reset", priority=True, tooltip=(
        "Reset every field to the study's defaults (drops a loaded sweep)")),
    Binding("ctrl+g", "toggle_sweep", "Sweep", priority=True, tooltip=(
        "With a sweep preset loaded: sweep off (ctrl+r runs the form once) / on again")),
    Binding("f2", "edit_sweep", "Sweep table", priority=True, tooltip=(
        "Type a sweep table (`lr = [0.01, 0.1]`, as a preset's `[sweep]`); empty removes it")),
    Binding("ctrl+t", "focus_runs", "Runs", priority=True, tooltip=(
        "Jump to the run history; again: back to the form")),
    Binding("f3", "focus_layers", "Layers", priority=True, tooltip=(
        "Focus the layer toggles: five content and five style checkboxes")),
    Binding("ctrl+l", "toggle_layer_losses", "Layer loss", priority=True, tooltip=(
        "Loss pane: show / hide one sparkline per layer term under the four sums")),
    Binding("f4", "view", "View", priority=True, tooltip=(
        "The canvas full screen (a sweep: its cell): zoom, pan, step through its frames")),
    Binding("f5", "frames", "Frames", priority=True, tooltip=(
        "The same viewer at the run's first saved frame: `[` `]` step, `space` plays")),
    Binding("f1", "help", "Help", priority=True, tooltip=(
        "This help; `ctrl+p` the command palette")),
    Binding("question_mark", "help", "Help", show=False),
    Binding("ctrl+q", "quit", "Quit", priority=True, tooltip=(
        "Quit; a running job is cancelled and saved first, marked *cancelled*")),
    Binding("q", "ask_quit", "Quit", show=False, tooltip=(
        "The same, but while a job runs it asks first: press `q` again within 5 s")),
]  # fmt: skip

# The viewer's keys (nst_tui/tui/screens/viewer.py), full screen over the dashboard.
VIEW_KEYS = "Zoom in / out, between fit and 8x (1:1 on the way)"
PAN = "Pan; with shift: by half the view"
VIEWER_BINDINGS: list[Binding] = [
    Binding("escape,q", "close", "Close", tooltip="Close the viewer"),
    Binding("plus,equals_sign", "zoom(1)", "Zoom in", tooltip=VIEW_KEYS),
    Binding("minus", "zoom(-1)", "Zoom out", tooltip=VIEW_KEYS),
    Binding("1", "one_to_one", "1:1", tooltip="One image pixel per screen pixel"),
    Binding("0,f", "fit", "Fit", tooltip="The whole picture"),
    *(
        Binding(key, f"pan({dx}, {dy})", "Pan", show=False, tooltip=PAN)
        for key, dx, dy in [("left", -1, 0), ("right", 1, 0), ("up", 0, -1), ("down", 0, 1)]
    ),
    *(
        Binding(f"shift+{key}", f"pan({dx}, {dy}, True)", "Pan far", show=False, tooltip=PAN)
        for key, dx, dy in [("left", -1, 0), ("right", 1, 0), ("up", 0, -1), ("down", 0, 1)]
    ),
    Binding("left_square_bracket", "step(-1)", "Prev frame", tooltip=(
        "The previous / next saved frame, with its iteration and losses"
    )),
    Binding("right_square_bracket", "step(1)", "Next frame", tooltip=(
        "The previous / next saved frame, with its iteration and losses"
    )),
    Binding("home", "jump(0)", "First", show=False, tooltip="The first / last saved frame"),
    Binding("end", "jump(-1)", "Last", show=False, tooltip="The first / last saved frame"),
    Binding("space", "play", "Play", tooltip="Play the saved frames at the run's fps / pause"),
    Binding("l", "latest", "Latest", tooltip=(
        "Back to the latest picture: the final image, or a running run's newest frame"
    )),
]  # fmt: skip

# Where each group of keys acts, in the order the help and the README list them. A widget's
# BINDINGS is typed list[BindingType] (a Binding or a tuple); every one of these is a Binding.
PLACES: dict[str, Sequence[Binding]] = {
    "anywhere": APP_BINDINGS,
    "in the form": [*PathInput.BINDINGS, *ParamsForm.BINDINGS],  # type: ignore[list-item]
    "in the run history": RunHistory.BINDINGS,  # type: ignore[dict-item]
    "in a sweep's grid": SweepGrid.BINDINGS,  # type: ignore[dict-item]
    "in the viewer": VIEWER_BINDINGS,
}

# How a key is written in the docs (Textual's names for the shifted digits and arrows).
SHOWN = {
    "question_mark": "?",
    "exclamation_mark": "!",
    "at": "@",
    "number_sign": "#",
    "dollar_sign": "$",
    "percent_sign": "%",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
    "plus": "+",
    "equals_sign": "=",
    "minus": "-",
    "shift+left": "shift+←",
    "shift+right": "shift+→",
    "shift+up": "shift+↑",
    "shift+down": "shift+↓",
    "left": "←",
    "right": "→",
    "up": "↑",
    "down": "↓",
}


@dataclass(frozen=True)
class KeyRow:
    keys: tuple[str, ...]  # as the docs write them
    does: str


def rows(bindings: Iterable[Binding]) -> list[KeyRow]:
    """One row per action (its keys together), or per group of keys (1..5); the text is
    the first binding's tooltip, else its description."""
    out: dict[str, tuple[list[str], str]] = {}
    for b in bindings:
        what = b.group.description if b.group else re.sub(r"\(.*", "", b.action)
        keys, does = out.setdefault(what, ([], b.tooltip or b.description))
        keys += [SHOWN.get(key, key) for key in b.key.split(",")]  # "escape,q": two keys
        if not does and b.tooltip:
            out[what] = (keys, b.tooltip)
    return [KeyRow(tuple(keys), does) for keys, does in out.values()]


def table(place: str) -> str:
    """The markdown table of the keys that act `place` (a PLACES key)."""
    lines = ["| Key | Action |", "| --- | --- |"]
    for row in rows(PLACES[place]):
        lines.append(f"| {' '.join(f'`{k}`' for k in row.keys)} | {row.does} |")
    return "\n".join(lines)


def readme_table() -> str:
    """Every key, where it acts, for the README."""
    lines = ["| key | where | does |", "| --- | --- | --- |"]
    for place in PLACES:
        for row in rows(PLACES[place]):
            lines.append(f"| {' '.join(f'`{k}`' for k in row.keys)} | {place} | {row.does} |")
    return "\n".join(lines)


BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"


def with_readme_table(readme: str) -> str:
    """`readme` with the text between its key markers replaced by `readme_table()`."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{readme_table()}\n{END}{tail}"


if __name__ == "__main__":
    path = Path(__file__).resolve().parents[2] / "README.md"
    path.write_text(with_readme_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the key table of {path}")
