"""The one source of truth for a run's parameters.

`Config` is a frozen dataclass holding the study's defaults. It validates
itself on construction, so an invalid Config cannot exist: every surface
(form, preset, `--set`, run record) goes through `Config.from_dict`, which
coerces TOML-ish values and raises `ConfigError` with one message per field.

Each field is declared once, `name: type = param(default, help, ...)`: its range or
choices and its form hint sit beside its type and default. The coercion (by the
annotation), the checks in `validate`, the form's rows, `nst-tui fields` and
docs/parameters.md are derived from it; rules between fields are code in `validate`.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import GenericAlias
from typing import Any, NamedTuple, get_args, get_origin

from nst_tui.errors import ConfigError
from nst_tui.sizes import AUTO, budget_problem

OUTPUTS = Path("outputs")  # where run folders go unless --out (or the app) says otherwise
N_LAYERS = 5  # VGG blocks 1..5; index i means the first conv (or its ReLU) of block i+1

# Which terms each mode optimizes: reconstruct all three; the visualizations (Gatys'
# figures) only the chosen layers' content, style or both, with no TV smoothing.
MODE_TERMS = {
    "reconstruct": ("content", "style", "tv"),
    "content": ("content",),
    "style": ("style",),
    "both": ("content", "style"),
}
MODES = tuple(MODE_TERMS)
OPTIMIZERS = ("adam", "lbfgs")
INITS = ("noise", "content", "style", "mean-noise", "content-noise")
RUN_INIT = "run:"  # init = "run:FOLDER" starts from that run's final.png
TV_NORMS = ("l1", "l2")
STYLE_STATS = ("gram", "w2")
LAYER_TYPES = ("conv", "relu")
POOLINGS = ("max", "avg")
BACKBONES = ("auto", "vgg19", "vgg16", "vgg16-caffe")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
EXECUTORS = ("local", "ray")  # where a job's cells run (nst_tui.job.executor)

MAX_FPS = 50  # GIF delays are whole 1/100 s; browsers play 1/100 s (and 0) as 1/10 s
MIN_EDGE = 16  # four 2x2 poolings sit before conv5_1: a side below 16 px leaves it nothing
MAX_SIZE = 8192  # the long edge the memory plan serves (in tiles where it must)
# A tile's interior is a whole number of cells of the deepest tap's pooling grid: conv5_1
# sits behind four 2x2 poolings, so 16 px is the least a tile can be on every layout.
MIN_TILE = 16
MIN_STYLE_SCALE, MAX_STYLE_SCALE = 0.1, 4.0
WEIGHT_MAX = 1e30  # alpha, beta, gamma, histogram: any weight, but a finite one


def uses_content(mode: str) -> bool:
    return "content" in MODE_TERMS.get(mode, ())


def uses_style(mode: str) -> bool:
    return "style" in MODE_TERMS.get(mode, ())


def uses_tv(mode: str) -> bool:
    return "tv" in MODE_TERMS.get(mode, ())


def active_taps(cfg: Config) -> frozenset[int]:
    """The layers a run needs: only these (and the blocks before them) run, and only these
    the memory plan counts."""
    taps: set[int] = set()
    if uses_content(cfg.mode):
        taps |= set(cfg.content_layers)
    if uses_style(cfg.mode):
        taps |= set(cfg.style_layers)
    return frozenset(taps)


def study_style_weights() -> tuple[float, ...]:
    # The study's per-layer weights: 1e3 / n^2 for n in 16, 32, 128, 256, 512.
    return tuple(1e3 / n**2 for n in (16, 32, 128, 256, 512))


class Param(NamedTuple):  # not a frozen dataclass: that costs 0.5 ms more at each start
    """What a field's declaration says beside its type and default. The coercion, the
    checks in `validate`, the form's rows, `nst-tui fields` and docs/parameters.md read it."""

    help: str  # one line: what it does
    lo: float | None = None  # range: lo <= value <= hi ...
    hi: float | None = None
    above: bool = False  # ... value > lo instead
    below: bool = False  # ... value < hi instead
    choices: tuple[str, ...] = ()  # the only values allowed
    suggest: tuple[str, ...] = ()  # values offered (form completions); validate checks others
    rule: str = ""  # the values allowed, in words, where code in validate checks them
    items: str = ""  # a list's items, in words, when the item type does not say it all
    label: str = ""  # the form's label (the name when empty)
    kind: str = ""  # the form's widget when the type does not decide: path | per-layer | toggles
    section: str = ""  # the form's and the page's heading
    path: bool = False  # holds file paths: made absolute where recorded (absolute_paths)
    job: bool = False  # the job's setting, not a cell's: never a [sweep] axis
    splits_batch: bool = False  # cells that differ here never share a batch (job.plan)


def param(default: Any, help: str, **hints: Any) -> Any:
    """A Config field: its default, then its Param (help, range or choices, form hints)."""
    return field(default=default, metadata={"param": Param(help, **hints)})


@dataclass(frozen=True)
class Config:
    """Every parameter of one Gatys-style optimization, with the study's defaults.

    Each field is declared once, here, in the form's order and sections; everything
    else (coercion, checks, form rows, `nst-tui fields`, docs/parameters.md) is derived."""

    # A field's keywords packed a few to a line, as a table reads (ruff would put one a line).
    # fmt: off
    content_image: str = param(
        "builtin:chelsea.png", "the content image: a path, or builtin:NAME for a shipped one",
        rule="an image path or builtin:NAME", label="content", kind="path", section="Images",
        path=True, splits_batch=True)
    style_image: str = param(
        "builtin:swirls.png", "the style image: a path, or builtin:NAME for a shipped one",
        rule="an image path or builtin:NAME", label="style", kind="path", section="Images",
        path=True)
    style_scale: float = param(
        1.0, "the style image's long edge is size * style_scale: larger strokes below 1",
        lo=MIN_STYLE_SCALE, hi=MAX_STYLE_SCALE, label="sty. scale", section="Images")
    style_images: tuple[str, ...] = param(
        (), "more styles, each sized like style_image, blended with it",
        rule="image paths or builtin:NAME", items="image paths", label="more sty.",
        section="Images", path=True)
    style_blend: tuple[float, ...] = param(
        (), "one weight per style (style_image first), scaled to sum to 1; [] = equal",
        rule="1 + len(style_images) numbers >= 0, not all 0", label="sty. blend", section="Images")
    init: str = param(
        "noise",
        "the first canvas: noise (uniform), content, style, mean-noise (faint noise around "
        "the content's mean colour), content-noise, run:FOLDER (its final.png) or an image",
        suggest=(*INITS, RUN_INIT), rule=f"{' | '.join(INITS)} | {RUN_INIT}FOLDER | an image path",
        kind="path", section="Images", path=True)
    original_colors: bool = param(
        False, "keep the content's colours: the result gives luminance only", label="keep color",
        section="Images")
    size: int = param(
        128, "canvas long edge in pixels; the content's aspect ratio is kept", lo=MIN_EDGE,
        hi=MAX_SIZE, section="Optimization", splits_batch=True)
    scales: tuple[int, ...] = param(
        (), "coarse-to-fine sizes, each run for `iterations` steps; [] = one scale at size",
        rule=f"sizes {MIN_EDGE} .. {MAX_SIZE}, going up, the last = size",
        items="whole numbers (sizes in px)", section="Optimization")
    carry_moments: bool = param(
        False, "scales with Adam: each scale starts with the last one's moments",
        label="carry adam", section="Optimization")
    iterations: int = param(
        2500, "optimizer steps (at each scale); one L-BFGS function evaluation counts as one", lo=1,
        hi=1_000_000, section="Optimization")
    stop_change: float = param(
        0.0,
        "stop once a window's mean loss is less than this fraction below the last "
        "window's (0.01: under 1% better); iterations stays the cap; 0 = off",
        lo=0, hi=1, label="stop gain", section="Optimization")
    stop_window: int = param(
        50, "iterations per window of the stop_change rule", lo=2, hi=1_000_000, label="stop win",
        section="Optimization")
    optimizer: str = param("adam", "adam or lbfgs", choices=OPTIMIZERS, section="Optimization")
    lr: float = param(
        0.06, "learning rate (Adam) or step size (L-BFGS)", lo=0, hi=1e6, above=True,
        section="Optimization")
    history: int = param(
        100, "L-BFGS history size", lo=1, hi=10_000, label="lbfgs hist", section="Optimization")
    adam_beta2: float = param(
        0.999, "Adam's second-moment decay (torch's default 0.999)", lo=0, hi=1, below=True,
        label="adam beta2", section="Optimization")
    seed: int = param(
        0, "seeds the noise canvas: same seed, same device, same run", lo=0, hi=2**63 - 1,
        section="Optimization")
    mode: str = param(
        "reconstruct",
        "reconstruct (every term), or visualize only the content, style or both terms",
        choices=MODES, section="Loss")
    alpha: float = param(5.0, "content weight", lo=0, hi=WEIGHT_MAX, section="Loss")
    beta: float = param(7000.0, "style weight", lo=0, hi=WEIGHT_MAX, section="Loss")
    gamma: float = param(1.2, "total-variation weight", lo=0, hi=WEIGHT_MAX, section="Loss")
    tv: str = param(
        "l1", "l1: mean |difference| of neighbours (the study's), l2: mean squared difference",
        choices=TV_NORMS, section="Loss")
    style_stats: str = param(
        "gram", "gram (the study's), or w2: mean and covariance, Wasserstein-2",
        choices=STYLE_STATS, label="style stat", section="Loss")
    histogram: float = param(
        0.0, "weight of a histogram-matching term at each style layer; 0 = off", lo=0,
        hi=WEIGHT_MAX, section="Loss")
    style_weights: tuple[float, ...] = param(
        study_style_weights(),
        "per style layer, by index: 1e3 / n^2 for n in 16, 32, 128, 256, 512",
        rule=f"{N_LAYERS} numbers >= 0", items=f"{N_LAYERS} numbers", label="style w",
        kind="per-layer", section="Loss")
    normalize_style_weights: bool = param(
        False, "scale style terms by their layer's width, so weights mean the same at any width",
        label="norm width", section="Loss")
    normalize_losses: bool = param(
        False,
        "every term divided by its target's energy (TV by the content's): one set of "
        "weights reads alike on any network's feature scale",
        label="norm loss", section="Loss")
    layer_type: str = param(
        "conv", "tap the first conv of a block, or its ReLU", choices=LAYER_TYPES,
        label="layer type", section="Network")
    pooling: str = param(
        "max", "the network's pooling", choices=POOLINGS, section="Network", splits_batch=True)
    backbone: str = param(
        "auto", "the network's weights: a name, or a .pth state dict", suggest=BACKBONES,
        rule=f"{' | '.join(BACKBONES)} | a .pth path", section="Network", path=True,
        splits_batch=True)
    device: str = param(
        "auto", "where the optimization runs", suggest=DEVICES,
        rule=f"{' | '.join(DEVICES)} | cuda:N", section="Network", splits_batch=True)
    precision: str = param(
        "auto",
        "auto (bf16 where it measured faster: AMX, an AMD CPU's AVX512-BF16, a GPU of compute "
        "capability 8.0+; else fp32), fp32, or bf16: the network in bfloat16 (losses, "
        "canvas stay fp32)",
        choices=PRECISIONS, section="Network", splits_batch=True)
    cuda_graphs: bool = param(
        True, "on a GPU, replay each Adam step from a CUDA graph", label="cuda graph",
        section="Network", splits_batch=True)
    max_memory: str = param(
        "auto",
        "the memory a run may use: auto (a safe share of what the device has free) or a "
        "size; past it the run goes in exact tiles, or is refused (docs/memory.md)",
        suggest=(AUTO,),
        rule="auto | a size: 6GiB, 512MiB, 1.5GB (B, KiB, MiB, GiB, TiB; kB, MB, GB, TB)",
        label="max memory", section="Network", splits_batch=True)
    tile: int = param(
        0,
        "exact tiled gradients in tiles of this many px (plus margins): memory is that of "
        "one tile, the picture the same (docs/tiles.md); 0 = as the memory plan chooses",
        rule=f"0, or {MIN_TILE} .. {MAX_SIZE} (rounded down to the deepest layer's pooling grid)",
        section="Network", splits_batch=True)
    executor: str = param(
        "local",
        "where a job's cells run: local (this process) or ray (a Ray cluster, a task per GPU)",
        choices=EXECUTORS, section="Network", job=True)
    ray_address: str = param(
        "", 'with executor ray: "" starts a local Ray, or the cluster to join', suggest=("auto",),
        rule='"" | auto | HOST:PORT | ray://HOST:PORT', label="ray addr", section="Network",
        job=True)
    sav_freq: int = param(
        10, "a frame and a loss row every sav_freq iterations", lo=1, hi=1_000_000,
        section="Output")
    fps: int = param(
        30, "frame rate of animation.gif (GIF delays are whole 1/100 s: 50 is the fastest)", lo=1,
        hi=MAX_FPS, section="Output")
    ema: float = param(
        0.0, "frames and the final image show an exponential moving average of the canvas; 0 = off",
        lo=0, hi=1, below=True, section="Output")
    content_layers: tuple[int, ...] = param(
        (3,), f"content layers by index: 0..{N_LAYERS - 1} = conv1_1 .. conv5_1 (or relu1_1 ..)",
        rule=f"indices 0..{N_LAYERS - 1}, each once", items=f"layer indices 0..{N_LAYERS - 1}",
        kind="toggles", section="Layers")
    style_layers: tuple[int, ...] = param(
        tuple(range(N_LAYERS)),
        f"style layers by index: 0..{N_LAYERS - 1} = conv1_1 .. conv5_1 (or relu1_1 ..)",
        rule=f"indices 0..{N_LAYERS - 1}, each once", items=f"layer indices 0..{N_LAYERS - 1}",
        kind="toggles", section="Layers")
    # fmt: on

    def __post_init__(self) -> None:
        errors = validate(self)
        if errors:
            raise ConfigError(errors)

    @property
    def total_iterations(self) -> int:
        """Steps of the whole run: `iterations` at each scale."""
        return self.iterations * max(1, len(self.scales))

    # ---- conversions -------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "") -> Config:
        """Build from loose values (TOML, form strings already parsed), naming bad fields."""
        unknown = [k for k in values if k not in FIELD_NAMES]
        errors: dict[str, str] = {}
        for key in unknown:
            errors[key] = unknown_field_message(key)
        coerced: dict[str, Any] = {}
        for key, value in values.items():
            if key in unknown:
                continue
            try:
                coerced[key] = _coerce(key, value)
            except ValueError as exc:
                errors[key] = str(exc)
        if errors:
            raise ConfigError(errors, source)
        try:
            return cls(**coerced)
        except ConfigError as exc:
            raise ConfigError(exc.errors, source) from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in TUPLE_FIELDS:
            out[key] = list(out[key])
        return out

    def replace(self, **changes: Any) -> Config:
        return Config.from_dict({**self.to_dict(), **changes})

    def to_toml(self, description: str = "") -> str:
        """A preset that reproduces this config: one `key = value` line per field."""
        lines = [f"description = {toml_value(description)}"] if description else []
        lines += [f"{k} = {toml_value(v)}" for k, v in self.to_dict().items()]
        return "\n".join(lines) + "\n"

    def differences(self, other: Config | None = None) -> dict[str, Any]:
        """Fields whose value differs from `other` (the defaults when None)."""
        base = (other or Config()).to_dict()
        return {k: v for k, v in self.to_dict().items() if base[k] != v}

    def absolute(self, base: Path | None = None) -> Config:
        """This config with every relative path made absolute from `base` (the working
        folder when None): what a run records and a saved preset keeps (absolute_paths)."""
        values = {k: getattr(self, k) for k in PATH_FIELDS}
        fixed = absolute_paths(values, base)
        changed = {k: v for k, v in fixed.items() if v != values[k]}
        return self.replace(**changed) if changed else self


def _annotated(annotation: str) -> Any:
    """The type an annotation names: int, float, bool, str or tuple[one of them, ...], the
    types `_coerce` reads from TOML (typing.get_type_hints: 0.3 ms more at each start)."""
    scalars = {"int": int, "float": float, "bool": bool, "str": str}
    if annotation.startswith("tuple[") and annotation.endswith(", ...]"):
        return GenericAlias(tuple, (scalars[annotation[6:-6]], ...))  # tuple[int, ...]
    return scalars[annotation]


PARAMS: dict[str, Param] = {f.name: f.metadata["param"] for f in fields(Config)}
FIELD_NAMES = tuple(PARAMS)
TYPES: dict[str, Any] = {k: _annotated(Config.__annotations__[k]) for k in PARAMS}
TUPLE_FIELDS = tuple(k for k, t in TYPES.items() if get_origin(t) is tuple)
# A job's settings, not a cell's: every cell of a sweep runs on the same executor.
JOB_FIELDS = tuple(k for k, p in PARAMS.items() if p.job)
PATH_FIELDS = tuple(k for k, p in PARAMS.items() if p.path)
BATCH_FIELDS = tuple(k for k, p in PARAMS.items() if p.splits_batch)


def unknown_field_message(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(FIELD_NAMES)}"
    return f"unknown field; {hint}"


def type_name(key: str) -> str:
    """A field's type as the page and `nst-tui fields` show it: int, float, list[str], ..."""
    t = TYPES[key]
    if get_origin(t) is tuple:
        return f"list[{get_args(t)[0].__name__}]"
    return str(t.__name__)


ITEMS = {float: "numbers", int: "whole numbers", str: "strings"}


def _is(kind: type, v: Any) -> bool:
    """Is `v` a value of `kind` as TOML writes it (a bool is not a number; 3 is a float)?"""
    if kind is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, kind) and (kind is bool or not isinstance(v, bool))


def _coerce(key: str, value: Any) -> Any:
    """Turn a TOML or form value into the field's annotated type, or raise ValueError."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        # TOML integers are unbounded: past ~1e308, float() and range messages overflow.
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**300:
            raise ValueError(f"is far too large (about {v.bit_length() * 3 // 10} digits)")
    kind = TYPES[key]
    if get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        item = get_args(kind)[0]
        if not all(_is(item, v) for v in value):
            raise ValueError(f"must be a list of {PARAMS[key].items or ITEMS[item]}, got {value!r}")
        return tuple(item(v) for v in value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not _is(kind, value):
        what = {int: "a whole number", float: "a number", bool: "true or false"}
        raise ValueError(f"must be {what.get(kind, 'a string')}, got {value!r}")
    return kind(value)


def range_message(key: str, v: Any) -> str | None:
    """Why `v` is outside the field's declared range (None when inside)."""
    p = PARAMS[key]
    lo, hi = p.lo, p.hi
    assert lo is not None and hi is not None
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if p.above:  # lo excluded (a comparison with nan is False: refused too)
        if not (number and lo < v <= hi):
            return f"must be a number above {lo:g} (and at most {hi:g}), got {v!r}"
    elif p.below:
        if not (number and lo <= v < hi):
            return f"must be at least {lo:g} and below {hi:g}, got {v!r}"
    elif not number or not math.isfinite(v):
        return f"must be a finite number, got {v!r}"
    elif not lo <= v <= hi:
        return f"must be between {lo:g} and {hi:g}, got {v:g}"
    return None


def validate(cfg: Config) -> dict[str, str]:
    """Return {field: message} for every invalid field of an already-typed config: first
    each field's declared type, range or choices, then the rules written as code."""
    e: dict[str, str] = {}
    for key, p in PARAMS.items():
        v = getattr(cfg, key)
        if TYPES[key] is bool and not isinstance(v, bool):
            e[key] = f"must be true or false, got {v!r}"
        elif p.choices and v not in p.choices:
            e[key] = f"must be one of {', '.join(p.choices)}; got {v!r}"
        elif p.lo is not None and (message := range_message(key, v)):
            e[key] = message
    if "fps" in e and isinstance(cfg.fps, int) and cfg.fps > MAX_FPS:
        e["fps"] += (
            f": a GIF stores frame delays in whole 1/100 s and browsers play a 1/100 s delay "
            f"at 1/10 s, so {MAX_FPS} fps (2/100 s) is the fastest a GIF plays"
        )

    sw = cfg.style_weights
    if len(sw) != N_LAYERS:
        e["style_weights"] = f"must hold {N_LAYERS} numbers (one per layer 0..4), got {len(sw)}"
    elif not all(math.isfinite(w) and w >= 0 for w in sw):
        e["style_weights"] = "must be finite numbers of 0 or more"

    if cfg.scales:
        sc = list(cfg.scales)
        if not all(MIN_EDGE <= v <= MAX_SIZE for v in sc):
            e["scales"] = f"sizes must be between {MIN_EDGE} and {MAX_SIZE}, got {sc}"
        elif any(b <= a for a, b in itertools.pairwise(sc)):
            e["scales"] = f"must go up, coarse to fine, got {sc}"
        elif sc[-1] != cfg.size:
            e["scales"] = f"must end at size ({cfg.size}), got {sc}"
    if any(not p.strip() for p in cfg.style_images):
        e["style_images"] = "must be paths to images (or builtin:NAME); one is empty"
    blend = cfg.style_blend
    if blend:
        n_styles = 1 + len(cfg.style_images)
        if len(blend) != n_styles:
            e["style_blend"] = (
                f"must hold one weight per style ({n_styles}: style_image, then style_images), "
                f"got {len(blend)}"
            )
        elif not all(math.isfinite(w) and w >= 0 for w in blend) or sum(blend) <= 0:
            e["style_blend"] = "must be finite numbers of 0 or more, not all 0"

    if not isinstance(cfg.tile, int) or not (cfg.tile == 0 or MIN_TILE <= cfg.tile <= MAX_SIZE):
        e["tile"] = (
            f"must be 0 (untiled) or a tile side from {MIN_TILE} to {MAX_SIZE} px, got {cfg.tile!r}"
        )
    elif cfg.tile and (why := tiles_refused(cfg)):
        e["tile"] = f"must be 0 here: {why}"
    if why := budget_problem(cfg.max_memory):
        e["max_memory"] = why
    if not _ray_address_ok(cfg.ray_address):
        e["ray_address"] = (
            "must be empty (start a local Ray), auto, HOST:PORT or ray://HOST:PORT "
            "(a port from 1 to 65535); "
            f"got {cfg.ray_address!r}"
        )
    if cfg.init not in INITS and not cfg.init.strip():
        e["init"] = f"must be one of {', '.join(INITS)}, {RUN_INIT}FOLDER or a path to an image"
    elif cfg.init.startswith(RUN_INIT) and not cfg.init[len(RUN_INIT) :].strip():
        e["init"] = f"{RUN_INIT} needs a run folder after it, e.g. {RUN_INIT}outputs/my-run"
    if not cfg.backbone.strip():
        e["backbone"] = f"must be one of {', '.join(BACKBONES)} or a path to a .pth file"
    elif cfg.backbone not in BACKBONES and not cfg.backbone.endswith((".pth", ".pt")):
        e["backbone"] = (
            f"must be one of {', '.join(BACKBONES)} or a path to a .pth file; got {cfg.backbone!r}"
        )
    if not _device_ok(cfg.device):
        e["device"] = f"must be one of {', '.join(DEVICES)} or cuda:N; got {cfg.device!r}"
    for name in ("content_image", "style_image"):
        if not getattr(cfg, name).strip():
            e[name] = "must be a path to an image (or builtin:NAME)"

    for name in ("content_layers", "style_layers"):
        layers = getattr(cfg, name)
        bad = [i for i in layers if not 0 <= i < N_LAYERS]
        if bad:
            e[name] = f"layer indices must be 0..{N_LAYERS - 1}; got {bad}"
        elif len(set(layers)) != len(layers):
            e[name] = f"lists a layer twice: {list(layers)}"
    if uses_content(cfg.mode) and not cfg.content_layers:
        e.setdefault("content_layers", f"mode {cfg.mode!r} needs at least one content layer")
    if uses_style(cfg.mode) and not cfg.style_layers:
        e.setdefault("style_layers", f"mode {cfg.mode!r} needs at least one style layer")
    return e


def tiles_refused(cfg: Config) -> str:
    """Why `cfg` cannot run in tiles ("" when it can): what the tile check and
    engine/tiles.effective_tile read."""
    if cfg.histogram > 0:
        return (
            "the histogram term ranks each channel's values over the whole canvas, which "
            "no tile sees (set histogram = 0 to tile)"
        )
    return ""


def job_field_message(key: str) -> str:
    """Why `key` (executor, ray_address) cannot be a [sweep] axis."""
    flag = "--executor" if key == "executor" else "--address"
    return (
        f"{key} is the job's setting, not a cell's: every cell runs on the same executor; "
        f"set {key} outside [sweep] (or {flag})"
    )


# ---- paths -----------------------------------------------------------------------
# Every path a run records (config.toml, sweep.toml) and a saved preset keeps is made
# absolute here, and only here: a preset's relative paths from its own folder (presets.
# parse), a path typed in the dashboard or with --set from the working folder (run_job,
# presets.save). builtin:NAME, the init and backbone keywords and ~ paths stay as written.
# The fields are those declared with path=True (PATH_FIELDS).


def absolute_paths(
    values: dict[str, Any], base: Path | None = None, each: bool = False
) -> dict[str, Any]:
    """`values` with relative paths made absolute from `base` (the working folder when
    None): content_image, style_image, style_images, init (a path or run:FOLDER) and
    backbone (a .pth path); `each`: every value is a list of values for the field (a
    [sweep] table's column). Other keys and values of the wrong type pass through."""
    try:
        folder = os.path.abspath(base if base is not None else os.curdir)
    except OSError:  # the working folder was deleted: a relative path names nothing now
        return dict(values)
    out = dict(values)
    for key in PATH_FIELDS:
        if key in out:
            value = out[key]
            if each and isinstance(value, list):
                out[key] = [_absolute_field(key, v, folder) for v in value]
            else:
                out[key] = _absolute_field(key, value, folder)
    return out


def _absolute_field(key: str, value: Any, folder: str) -> Any:
    if key == "style_images" and isinstance(value, (list, tuple)):
        return type(value)(_absolute(v, folder) for v in value)
    if not isinstance(value, str):
        return value  # Config.from_dict names the wrong type
    if key == "init" and value.startswith(RUN_INIT):
        return RUN_INIT + _absolute(value[len(RUN_INIT) :], folder)
    if (key == "init" and value in INITS) or (
        key == "backbone" and not value.endswith((".pth", ".pt"))
    ):
        return value
    return _absolute(value, folder)


def _absolute(spec: Any, folder: str) -> Any:
    if not isinstance(spec, str) or not spec.strip() or spec.startswith(("builtin:", "~")):
        return spec
    if os.path.isabs(spec):
        return spec
    return os.path.normpath(os.path.join(folder, spec))


def _ray_address_ok(address: str) -> bool:
    if address in ("", "auto"):
        return True
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    ok = bool(sep and host.strip() and port.isdigit()) and 0 < int(port or 0) < 65536
    return ok and not any(c.isspace() for c in address)


def _device_ok(device: str) -> bool:
    if device in DEVICES:
        return True
    if device.startswith("cuda:"):
        return device[5:].isdigit()
    return False


# ---- text forms ------------------------------------------------------------


def toml_value(v: Any) -> str:
    """A TOML literal for the scalars and flat lists a config holds."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # Python's repr of ints and floats (incl. inf, nan) is valid TOML
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def parse_value(text: str) -> Any:
    """Parse one value as TOML; a bare word (lbfgs, ../img.jpg) is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (ValueError, RecursionError):  # TOMLDecodeError; an int past 4300 digits; [[[[...
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` as given to `--set`."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError({text: "expected KEY=VALUE, e.g. --set iterations=500"})
    if key not in FIELD_NAMES:
        raise ConfigError({key: unknown_field_message(key)}, "--set")
    return key, parse_value(value.strip())
