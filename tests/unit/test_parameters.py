"""Each Config field is declared once (nst_tui/config.py) and every surface is derived
from that declaration: a field round-trips through a preset's TOML, `--set`, the form,
and is listed on docs/parameters.md, which is regenerated, never edited by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult

from nst_tui import presets
from nst_tui.cli import main
from nst_tui.config import (
    FIELD_NAMES,
    PARAMS,
    TYPES,
    Config,
    parse_assignment,
    toml_value,
    uses_content,
    uses_style,
    uses_tv,
)
from nst_tui.parameters import REGENERATE, page
from nst_tui.tui.widgets.params_form import FIELDS, LAYER_FIELDS, ParamsForm

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "parameters.md"

# Values whose rules are code (paths, lists tied to other fields): the rest are derived
# from the declaration, so a new number, flag or choice needs no line here.
SAMPLES: dict[str, Any] = {
    "content_image": "builtin:swirls.png",
    "style_image": "builtin:chelsea.png",
    "style_images": ["builtin:chelsea.png"],
    "style_blend": [2.0],
    "scales": [64, 128],
    "content_layers": [0, 2],
    "style_layers": [1],
    "max_memory": "6GiB",
    "tile": 64,
}


def sample(name: str) -> Any:
    """A valid value of `name` other than its default, as Config.to_dict writes it."""
    if name in SAMPLES:
        return SAMPLES[name]
    p, kind, default = PARAMS[name], TYPES[name], Config().to_dict()[name]
    if kind is bool:
        return not default
    if p.choices or p.suggest:
        return next(c for c in (p.choices or p.suggest) if c != default)
    if kind is int:
        assert p.hi is not None
        return default + 1 if default + 1 <= p.hi else default - 1
    if kind is float:
        assert p.hi is not None
        return default / 2 if default else min(0.5, p.hi / 2)
    if isinstance(default, list) and default and isinstance(default[0], float):
        return [v / 2 for v in default]
    raise AssertionError(f"{name}: add a non-default value to SAMPLES")


def changed(name: str) -> Config:
    config = Config.from_dict({name: sample(name)})
    assert config != Config(), name
    return config


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_a_field_round_trips_through_a_preset(name: str, tmp_path: Path) -> None:
    config = changed(name)
    path = tmp_path / "p.toml"
    path.write_text(config.to_toml("one field"), encoding="utf-8")
    assert presets.load(str(path)).config == config


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_a_field_round_trips_through_set(name: str) -> None:
    config = changed(name)
    key, value = parse_assignment(f"{name}={toml_value(config.to_dict()[name])}")
    assert Config.from_dict({key: value}, "--set") == config


def test_every_field_is_on_the_committed_page() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert text == page(), f"docs/parameters.md is out of date: run `{REGENERATE}`"
    for name in FIELD_NAMES:
        assert f"| `{name}` |" in text, name


def test_every_field_has_a_form_row_or_toggles() -> None:
    shown = {f.config_field for f in FIELDS} | set(LAYER_FIELDS)
    assert shown == set(FIELD_NAMES)
    assert all(PARAMS[name].help and PARAMS[name].section for name in FIELD_NAMES)


class FormApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ParamsForm(Config(), id="form")


async def test_every_field_round_trips_through_the_form() -> None:
    app = FormApp()
    async with app.run_test(size=(120, 60)):
        form = app.query_one(ParamsForm)
        for name in FIELD_NAMES:
            config = changed(name)
            form.load(config)
            assert Config.from_dict(form.values(), "form") == config, name
            assert form.read() == (config, {}), name


def test_fields_lists_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fields"]) == 0
    out = capsys.readouterr().out
    for name in FIELD_NAMES:
        assert f"  {name} " in out, name
    assert main(["fields", "--markdown"]) == 0
    assert capsys.readouterr().out == page()


def test_the_declarations_load_neither_torch_nor_textual() -> None:
    code = (
        "import sys, nst_tui.config, nst_tui.parameters, nst_tui.job.plan; "
        "print(sorted(m for m in ('torch', 'textual') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_modes_name_their_terms_in_one_place() -> None:
    assert [(uses_content(m), uses_style(m), uses_tv(m)) for m in PARAMS["mode"].choices] == [
        (True, True, True),  # reconstruct
        (True, False, False),  # content
        (False, True, False),  # style
        (True, True, False),  # both
    ]
