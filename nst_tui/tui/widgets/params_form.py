"""The parameters form: every Config field as a key-reachable widget.

`FIELDS`, the form's rows, is built from each Config field's declaration (its
label, section and type; see `form_kind`). The form reads and writes `Config`
only; validation is the Config's own (`Config.from_dict`), and each message is
shown under the field it names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from nst_tui.config import (
    N_LAYERS,
    PARAMS,
    TUPLE_FIELDS,
    TYPES,
    Config,
    parse_value,
    toml_value,
)
from nst_tui.engine.images import check_image
from nst_tui.errors import ConfigError, NSTError
from nst_tui.preflight import check_inputs, memory_plan
from nst_tui.probe import device_now
from nst_tui.text import visible
from nst_tui.tui.widgets.checkbox import MarkedCheckbox
from nst_tui.tui.widgets.text_input import TextInput

STYLE_WEIGHTS = "style_weights"
# Shift+1..5 on a US keyboard: style layer N, beside the digits' content layer N.
STYLE_KEYS = ("exclamation_mark", "at", "number_sign", "dollar_sign", "percent_sign")
CONTENT_GROUP = Binding.Group("Content", compact=True)
STYLE_GROUP = Binding.Group("Style", compact=True)
FLAG_CHOICES = ("false", "true")  # a flag's Select values; parse_value reads them as bools


@dataclass(frozen=True)
class Field:
    """One row of the form: a Config field (or one of the five style weights)."""

    name: str  # Config field, or "style_weights.N"
    label: str
    kind: str  # number | text | path | choice | flag (a true/false choice) | list (TOML)
    choices: tuple[str, ...] = ()  # for choice; suggestions for text and path
    section: str = ""  # a heading drawn above this row

    @property
    def config_field(self) -> str:
        return self.name.partition(".")[0]

    @property
    def widget_id(self) -> str:
        return "field-" + self.name.replace(".", "-")


def form_kind(name: str) -> str:
    """A field's widget: its declared kind (path, per-layer, toggles), else what its type
    and choices say (flag, choice, number, list, text)."""
    p, kind = PARAMS[name], TYPES[name]
    if p.kind:
        return p.kind
    if kind is bool:
        return "flag"
    if p.choices:
        return "choice"
    if kind in (int, float):
        return "number"
    return "list" if name in TUPLE_FIELDS else "text"


def form_rows() -> Iterator[Field]:
    """Every declared field as rows, grouped by section (in the order the sections first
    appear in Config): a per-layer field as one row per layer; toggles are drawn apart."""
    sections = list(dict.fromkeys(p.section for p in PARAMS.values()))
    last = ""
    for name in sorted(PARAMS, key=lambda n: sections.index(PARAMS[n].section)):
        p, kind = PARAMS[name], form_kind(name)
        if kind == "toggles":
            continue
        heading, last = ("" if p.section == last else p.section), p.section
        label = p.label or name
        if kind == "per-layer":
            for i in range(N_LAYERS):
                yield Field(f"{name}.{i}", f"{label}{i + 1}", "number", (), "" if i else heading)
        else:
            yield Field(name, label, kind, p.choices or p.suggest, heading)


FIELDS: tuple[Field, ...] = tuple(form_rows())
LAYER_FIELDS = tuple(name for name in PARAMS if form_kind(name) == "toggles")  # LayerToggles
ERROR_FIELDS = tuple(dict.fromkeys([f.config_field for f in FIELDS] + list(LAYER_FIELDS)))


def show_value(value: Any) -> str:
    """A field's value as typed in the form; reading it back gives the same value."""
    if isinstance(value, bool):
        return FLAG_CHOICES[value]
    if isinstance(value, (list, tuple)):
        return toml_value(value)  # ["a.jpg", "b.jpg"], [0.5, 0.5]: read back by parse_value
    return show_float(value) if isinstance(value, float) else str(value)


def show_float(value: float) -> str:
    """repr, or a shorter exponent form that reads back exactly: gamma 1e7, not 10000000.0."""
    text = repr(value)
    mantissa, e, exponent = f"{value:g}".partition("e")
    if e:
        short = f"{mantissa}e{int(exponent)}"
        if len(short) < len(text) and float(short) == value:
            return short
    return text


def input_problem(config: Config) -> dict[str, str] | None:
    """What a run of `config` would stop at before its first step, as {field: message}:
    a missing or unreadable image, an image too small for the size, a folder named in
    `init = "run:..."` that is not a run to go on from. The CLI's checks before torch
    (file headers only: cheap enough for every key)."""
    try:
        check_inputs([config])
    except NSTError as exc:
        message = str(exc)
        # Each message opens with the field at fault ("style_image '/x.jpg': no such
        # file"); the longest name first, so style_images is not read as style_image.
        named = sorted(ERROR_FIELDS, key=len, reverse=True)
        field = next((f for f in named if message.startswith(f)), "content_image")
        return {field: message}
    return None


MEMORY_AFTER = "size"  # the row the memory plan's line sits under


def memory_line(config: Config) -> tuple[str, bool]:
    """The memory plan of `config` in one line, and whether it is refused (nothing fits);
    ("", False) where its images cannot be read (their own errors say why). Torch-free:
    the images' headers, /proc's figures, the CUDA figures the engine last found."""
    try:
        content = check_image(config.content_image, "content_image")
        styles = [check_image(config.style_image, "style_image")]
        styles += [check_image(p, "style_images") for p in config.style_images]
    except NSTError:
        return "", False
    the_plan = memory_plan(config, content, styles, device_now(config.device))
    return f"memory {the_plan.line()}", not the_plan.fits


class PathInput(TextInput):
    """An Input holding an image path; ctrl+f browses for one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+f", "browse", "Browse", tooltip="In an image field: pick the file from a tree"
        )
    ]

    @dataclass
    class BrowseRequested(Message):
        """The user asked to pick a file for this input."""

        input: PathInput

    def action_browse(self) -> None:
        self.post_message(self.BrowseRequested(self))


class LayerBox(MarkedCheckbox):
    """A layer's checkbox: blank when off, so it reads right without colour too."""


class LayerToggles(Widget):
    """Five content and five style layer checkboxes, named after the layer type."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toggle-head"):
            yield Label("layer", classes="toggle-name")
            yield Label("content", classes="toggle-col")
            yield Label("style", classes="toggle-col")
        for i in range(N_LAYERS):
            with Horizontal(classes="toggle-row"):
                yield Label(
                    self.layer_label(i, "conv"), id=f"layer-name-{i}", classes="toggle-name"
                )
                yield LayerBox(compact=True, id=f"content-layer-{i}", classes="toggle-col")
                yield LayerBox(compact=True, id=f"style-layer-{i}", classes="toggle-col")
        yield Static("", id="error-content_layers", classes="field-error", markup=False)
        yield Static("", id="error-style_layers", classes="field-error", markup=False)

    @staticmethod
    def layer_label(index: int, layer_type: str) -> str:
        return f"{index + 1} {layer_type}{index + 1}_1"

    def set_layer_type(self, layer_type: str) -> None:
        for i in range(N_LAYERS):
            self.query_one(f"#layer-name-{i}", Label).update(self.layer_label(i, layer_type))

    def box(self, kind: str, index: int) -> Checkbox:
        return self.query_one(f"#{kind}-layer-{index}", Checkbox)

    def load(self, content: tuple[int, ...], style: tuple[int, ...]) -> None:
        for i in range(N_LAYERS):
            self.box("content", i).value = i in content
            self.box("style", i).value = i in style

    def read(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        def on(kind: str) -> tuple[int, ...]:
            return tuple(i for i in range(N_LAYERS) if self.box(kind, i).value)

        return on("content"), on("style")

    def toggle(self, kind: str, index: int) -> str:
        """Flip one box; returns what happened, in words ("content layer 2 conv2_1 on")."""
        box = self.box(kind, index)
        box.toggle()
        name = self.query_one(f"#layer-name-{index}", Label).content
        return f"{kind} layer {name} {'on' if box.value else 'off'}"


class ParamsForm(VerticalScroll, can_focus=False):  # tab goes to the first field
    """The form bound to Config. `read()` validates; `load()` fills it.

    The layer keys are the form's, not the App's: they act only while the focus is in
    the form and on something that does not take text (a text field gets its digits),
    and each says what it did."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(
                str(i + 1),
                f"toggle_layer('content', {i})",
                f"content {i + 1}",
                group=CONTENT_GROUP,
                tooltip="Toggle content layer N, outside a text field (a text field takes its "
                "digits); a note says what changed",
            )
            for i in range(N_LAYERS)
        ),
        *(
            Binding(
                key,
                f"toggle_layer('style', {i})",
                f"style {i + 1}",
                group=STYLE_GROUP,
                tooltip="Toggle style layer N (shift+1 … 5), likewise",
            )
            for i, key in enumerate(STYLE_KEYS)
        ),
    ]

    @dataclass
    class Validated(Message):
        """The form was re-read; `errors` is empty when it holds a valid Config."""

        errors: dict[str, str]

    def __init__(self, config: Config, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._initial = config
        self.errors: dict[str, str] = {}
        self.planned: Config | None = None  # the last valid values read (memory_line's)

    def compose(self) -> ComposeResult:
        values = self._initial.to_dict()
        for spec in FIELDS:
            if spec.section:
                yield Label(spec.section, classes="form-section")
            with Horizontal(classes="field-row"):
                yield Label(spec.label, classes="field-label")
                yield self._make_widget(spec, values)
            if spec.name == f"{STYLE_WEIGHTS}.{N_LAYERS - 1}" or "." not in spec.name:
                yield Static(
                    "", id=f"error-{spec.config_field}", classes="field-error", markup=False
                )
            if spec.name == MEMORY_AFTER:
                yield Static("", id="memory-plan", markup=False)
        yield Label(PARAMS[LAYER_FIELDS[0]].section, classes="form-section")
        yield LayerToggles(id="layers")
        yield Static("", id="sweep-note")  # docked on top (last, so not :first-child)

    def _make_widget(self, spec: Field, values: dict[str, Any]) -> Widget:
        value = self._value_of(spec, values)
        if spec.kind in ("choice", "flag"):
            choices = FLAG_CHOICES if spec.kind == "flag" else spec.choices
            return Select(
                [(c, c) for c in choices],
                value=show_value(value) if spec.kind == "flag" else value,
                allow_blank=False,
                compact=True,
                id=spec.widget_id,
            )
        suggester = SuggestFromList(spec.choices) if spec.choices else None
        cls = PathInput if spec.kind == "path" else TextInput
        return cls(
            show_value(value),
            compact=True,
            suggester=suggester,
            id=spec.widget_id,
            select_on_focus=False,
        )

    @staticmethod
    def _value_of(spec: Field, values: dict[str, Any]) -> Any:
        field, _, index = spec.name.partition(".")
        return values[field][int(index)] if index else values[field]

    def on_mount(self) -> None:
        layers = self.query_one(LayerToggles)
        layers.load(self._initial.content_layers, self._initial.style_layers)
        layers.set_layer_type(self._initial.layer_type)

    # ---- reading and writing ------------------------------------------
    def widget(self, name: str) -> Input | Select[str]:
        spec = next(f for f in FIELDS if f.name == name)
        # query_one by id is typed Widget; each field's id names an Input or a Select.
        return self.query_one(f"#{spec.widget_id}")  # type: ignore[return-value]

    def load(self, config: Config) -> None:
        """Show `config` in every field (and re-validate once)."""
        values = config.to_dict()
        for spec in FIELDS:
            value = self._value_of(spec, values)
            widget = self.widget(spec.name)
            if isinstance(widget, Select):
                widget.value = show_value(value) if spec.kind == "flag" else value
            else:
                widget.value = show_value(value)
                widget.cursor_position = 0  # show a long path's start, not its end
        layers = self.query_one(LayerToggles)
        layers.load(config.content_layers, config.style_layers)
        layers.set_layer_type(config.layer_type)
        self.check()

    def show_sweep(self, note: str | Content | None, swept: Iterable[str] = ()) -> None:
        """Say a sweep is loaded (None: none is) and mark the fields it sets per cell."""
        label = self.query_one("#sweep-note", Static)
        label.update(note or "")
        label.set_class(bool(note), "-shown")
        fields = set(swept)
        for spec in FIELDS:
            self.widget(spec.name).set_class(spec.config_field in fields, "-swept")
        layers = self.query_one(LayerToggles)
        for kind in ("content", "style"):
            for i in range(N_LAYERS):
                layers.box(kind, i).set_class(f"{kind}_layers" in fields, "-swept")

    def values(self) -> dict[str, Any]:
        """The raw field values: numbers parsed as TOML, text as typed."""
        out: dict[str, Any] = {STYLE_WEIGHTS: [None] * N_LAYERS}
        for spec in FIELDS:
            widget = self.widget(spec.name)
            raw = widget.value if isinstance(widget, Select) else widget.value.strip()
            if spec.kind == "list" and not raw:
                value: Any = []  # an emptied list field
            elif spec.kind in ("number", "flag", "list"):
                value = parse_value(str(raw))
            else:
                value = raw
            field, _, index = spec.name.partition(".")
            if index:
                out[field][int(index)] = value
            else:
                out[field] = value
        out["content_layers"], out["style_layers"] = self.query_one(LayerToggles).read()
        return out

    def read(self) -> tuple[Config | None, dict[str, str]]:
        """The form as a Config, or None and {field: message} for every bad field."""
        values = self.values()
        self.planned = None
        try:
            config = Config.from_dict(values, "form")
        except ConfigError as exc:
            errors = dict(exc.errors)
        else:
            self.planned = config  # valid values: the memory line plans it, fit or not
            problem = input_problem(config)
            return (config, {}) if problem is None else (None, problem)
        # A type error stops Config before its range checks: check the other
        # fields again with defaults in the bad places, so all show at once.
        defaults = Config().to_dict()
        patched = {k: defaults[k] if k in errors else v for k, v in values.items()}
        try:
            Config.from_dict(patched)
        except ConfigError as exc:
            for key, message in exc.errors.items():
                errors.setdefault(key, message)
        return None, errors

    def check(self) -> Config | None:
        """Validate, mark each bad field with its message, and say so."""
        config, errors = self.read()
        self.errors = errors
        for name in ERROR_FIELDS:
            label = self.query_one(f"#error-{name}", Static)
            message = visible(errors.get(name, ""), lines=True)  # a value may hold an escape
            if label.content != message:  # an update lays the whole screen out again
                label.update(message)
            label.set_class(name in errors, "-shown")
        for spec in FIELDS:
            self.widget(spec.name).set_class(spec.config_field in errors, "-invalid")
        self.show_memory()
        self.post_message(self.Validated(errors))
        return config

    def show_memory(self) -> None:
        """The memory plan's line under the size: the predicted peak, the budget, and
        whether it fits as it is, in tiles, or not at all (then max_memory says why)."""
        text, refused = memory_line(self.planned) if self.planned is not None else ("", False)
        label = self.query_one("#memory-plan", Static)
        if label.content != text:
            label.update(text)
        label.set_class(refused, "-refused")

    def focus_first(self) -> None:
        self.widget(FIELDS[0].name).focus()

    def focus_layers(self) -> None:
        # The whole section in view, not only its first box: on a short terminal the
        # fifth row would stay below the fold. After the refresh: focusing can change the
        # form's layout (a scrollbar), and a scroll computed before it stopped a row short.
        toggles = self.query_one(LayerToggles)
        toggles.box("content", 0).focus(scroll_visible=False)
        self.call_after_refresh(self.scroll_to_widget, toggles, top=True, animate=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A text field takes its digits: the layer keys are not offered (nor in the footer).
        return not (action == "toggle_layer" and isinstance(self.app.focused, Input))

    def action_toggle_layer(self, kind: str, index: int) -> None:
        """Toggle content or style layer `index` (0-based) and say so."""
        self.notify(self.query_one(LayerToggles).toggle(kind, index), timeout=2, markup=False)

    def first_invalid(self) -> Widget | None:
        for spec in FIELDS:
            if spec.config_field in self.errors:
                return self.widget(spec.name)
        for name in LAYER_FIELDS:
            if name in self.errors:
                kind = name.partition("_")[0]
                return self.query_one(LayerToggles).box(kind, 0)
        return None

    # ---- events ----------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Message) -> None:
        if isinstance(event, Select.Changed) and event.select.id == "field-layer_type":
            self.query_one(LayerToggles).set_layer_type(str(event.value))
        self.check()
