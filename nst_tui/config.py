"""The one source of truth for a run's parameters.

`Config` is a frozen dataclass holding the study's defaults. It validates
itself on construction, so an invalid Config cannot exist: every surface
(form, preset, `--set`, run record) goes through `Config.from_dict`, which
coerces TOML-ish values and raises `ConfigError` with one message per field.
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
from typing import Any

from nst_tui.errors import ConfigError

OUTPUTS = Path("outputs")  # where run folders go unless --out (or the app) says otherwise
N_LAYERS = 5  # VGG blocks 1..5; index i means the first conv (or its ReLU) of block i+1

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("noise", "content", "style", "mean-noise", "content-noise")
TV_NORMS = ("l1", "l2")
STYLE_STATS = ("gram", "w2")
LAYER_TYPES = ("conv", "relu")
MODES = ("reconstruct", "content", "style", "both")
POOLINGS = ("max", "avg")
BACKBONES = ("auto", "vgg19", "vgg16", "vgg16-caffe")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
EXECUTORS = ("local", "ray")  # where a job's cells run (nst_tui.job.executor)

MAX_FPS = 50  # GIF delays are whole 1/100 s; browsers play 1/100 s (and 0) as 1/10 s
MIN_SIZE = 16  # four 2x2 poolings sit before conv5_1: below 16 px it sees nothing
MAX_SIZE = 4096


def study_style_weights() -> tuple[float, ...]:
    # The study's per-layer weights: 1e3 / n^2 for n in 16, 32, 128, 256, 512.
    return tuple(1e3 / n**2 for n in (16, 32, 128, 256, 512))


@dataclass(frozen=True)
class Config:
    """Every parameter of one Gatys-style optimization, with the study's defaults."""

    iterations: int = 2500  # optimizer steps; one L-BFGS function evaluation counts as one
    size: int = 128  # canvas long edge in pixels; the content's aspect ratio is kept
    sav_freq: int = 10  # a frame and a loss row every sav_freq iterations
    fps: int = 30  # frame rate of animation.gif
    alpha: float = 5.0  # content weight
    beta: float = 7000.0  # style weight
    gamma: float = 1.2  # total-variation weight
    style_weights: tuple[float, ...] = field(default_factory=study_style_weights)  # by layer index
    lr: float = 0.06  # learning rate (Adam) or step size (L-BFGS)
    optimizer: str = "adam"  # adam | lbfgs
    history: int = 100  # L-BFGS history size
    # noise (uniform) | content | style | mean-noise (faint noise around the content's mean
    # colour) | content-noise (the content plus noise) | run:FOLDER (its final.png) | a path
    init: str = "noise"
    content_layers: tuple[int, ...] = (3,)  # indices 0..4 (conv1_1 .. conv5_1)
    style_layers: tuple[int, ...] = (0, 1, 2, 3, 4)
    layer_type: str = "conv"  # conv | relu: tap the first conv of a block or its ReLU
    mode: str = "reconstruct"  # reconstruct | content | style | both (visualize only those terms)
    content_image: str = "builtin:chelsea.png"  # a path, or builtin:NAME for a shipped image
    style_image: str = "builtin:swirls.png"
    seed: int = 0  # seeds the noise canvas; same seed, same device -> same run
    pooling: str = "max"  # max | avg
    backbone: str = "auto"  # auto | vgg19 | vgg16 | vgg16-caffe | path to a .pth state dict
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    style_scale: float = 1.0  # the style image's long edge is size * style_scale
    normalize_style_weights: bool = False  # scale style terms so weights mean the same by width
    # Every term divided by its target's energy (content, style per layer; TV by the
    # content's): one set of weights reads alike on any network's feature scale.
    normalize_losses: bool = False
    tv: str = "l1"  # l1: mean |difference| of neighbours (the study's) | l2: mean squared
    style_stats: str = "gram"  # gram (the study's) | w2: mean and covariance, Wasserstein-2
    histogram: float = 0.0  # weight of a histogram-matching term at each style layer (0: off)
    adam_beta2: float = 0.999  # Adam's second-moment decay (torch's default 0.999)
    original_colors: bool = False  # keep the content's colours: the result gives luminance only
    style_images: tuple[str, ...] = ()  # more styles, blended with style_image
    style_blend: tuple[float, ...] = ()  # one weight per style (style_image first); () = equal
    scales: tuple[int, ...] = ()  # coarse-to-fine sizes, the last = size; () = one scale
    carry_moments: bool = False  # scales with Adam: each starts with the last one's moments
    ema: float = 0.0  # frames and the final image show an exponential moving average of the canvas
    precision: str = "fp32"  # fp32 | bf16: the network in bfloat16 (losses, canvas stay fp32)
    cuda_graphs: bool = True  # on a GPU, replay each Adam step from a CUDA graph
    executor: str = "local"  # local (this process) | ray (a Ray cluster: one task per GPU)
    ray_address: str = ""  # ray: "" starts a local Ray; auto | HOST:PORT | ray://HOST:PORT

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


FIELD_NAMES = tuple(f.name for f in fields(Config))
TUPLE_FIELDS = (
    "style_weights",
    "content_layers",
    "style_layers",
    "style_images",
    "style_blend",
    "scales",
)
INT_FIELDS = ("iterations", "size", "sav_freq", "fps", "history", "seed")
FLOAT_FIELDS = ("alpha", "beta", "gamma", "lr", "style_scale", "ema", "histogram", "adam_beta2")
BOOL_FIELDS = (
    "normalize_style_weights",
    "normalize_losses",
    "original_colors",
    "cuda_graphs",
    "carry_moments",
)
RUN_INIT = "run:"  # init = "run:FOLDER" starts from that run's final.png
# A job's settings, not a cell's: every cell of a sweep runs on the same executor.
JOB_FIELDS = ("executor", "ray_address")
MIN_STYLE_SCALE, MAX_STYLE_SCALE = 0.1, 4.0
STR_FIELDS = (
    "optimizer",
    "init",
    "layer_type",
    "mode",
    "content_image",
    "style_image",
    "pooling",
    "backbone",
    "device",
    "precision",
    "executor",
    "ray_address",
    "tv",
    "style_stats",
)


def unknown_field_message(key: str) -> str:
    close = difflib.get_close_matches(key, FIELD_NAMES, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(FIELD_NAMES)}"
    return f"unknown field; {hint}"


def _coerce(key: str, value: Any) -> Any:
    """Turn a TOML or form value into the field's type, or raise ValueError with a message."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        # TOML integers are unbounded: past ~1e308, float() and range messages overflow.
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**300:
            raise ValueError(f"is far too large (about {v.bit_length() * 3 // 10} digits)")
    if key in INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a whole number, got {value!r}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"must be a whole number, got {value!r}")
        return int(value)
    if key in FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number, got {value!r}")
        return float(value)
    if key in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if key in STR_FIELDS:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        return value
    if key in TUPLE_FIELDS:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {value!r}")
        if key in ("style_weights", "style_blend"):
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                what = f"{N_LAYERS} numbers" if key == "style_weights" else "numbers"
                raise ValueError(f"must be a list of {what}, got {value!r}")
            return tuple(float(v) for v in value)
        if key == "scales":
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise ValueError(f"must be a list of whole numbers (sizes in px), got {value!r}")
            return tuple(value)
        if key == "style_images":
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"must be a list of image paths, got {value!r}")
            return tuple(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"must be a list of layer indices 0..{N_LAYERS - 1}, got {value!r}")
        return tuple(value)
    raise ValueError("unknown field")  # pragma: no cover - from_dict filters unknown keys


def validate(cfg: Config) -> dict[str, str]:
    """Return {field: message} for every invalid field of an already-typed config."""
    e: dict[str, str] = {}

    def in_range(name: str, lo: float, hi: float) -> None:
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            e[name] = f"must be a finite number, got {v!r}"
        elif not lo <= v <= hi:
            e[name] = f"must be between {lo:g} and {hi:g}, got {v:g}"

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if getattr(cfg, name) not in allowed:
            e[name] = f"must be one of {', '.join(allowed)}; got {getattr(cfg, name)!r}"

    in_range("iterations", 1, 1_000_000)
    in_range("size", MIN_SIZE, MAX_SIZE)
    in_range("sav_freq", 1, 1_000_000)
    in_range("fps", 1, MAX_FPS)
    if "fps" in e and isinstance(cfg.fps, int) and cfg.fps > MAX_FPS:
        e["fps"] += (
            f": a GIF stores frame delays in whole 1/100 s and browsers play a 1/100 s delay "
            f"at 1/10 s, so {MAX_FPS} fps (2/100 s) is the fastest a GIF plays"
        )
    in_range("history", 1, 10_000)
    in_range("seed", 0, 2**63 - 1)
    for name in ("alpha", "beta", "gamma", "histogram"):
        in_range(name, 0.0, 1e30)
    if not (isinstance(cfg.adam_beta2, float) and 0 <= cfg.adam_beta2 < 1):
        e["adam_beta2"] = f"must be at least 0 and below 1, got {cfg.adam_beta2!r}"
    in_range("style_scale", MIN_STYLE_SCALE, MAX_STYLE_SCALE)
    for name in BOOL_FIELDS:
        if not isinstance(getattr(cfg, name), bool):
            e[name] = f"must be true or false, got {getattr(cfg, name)!r}"
    v = cfg.lr
    if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 or v > 1e6:
        e["lr"] = f"must be a number above 0 (and at most 1e6), got {v!r}"

    sw = cfg.style_weights
    if len(sw) != N_LAYERS:
        e["style_weights"] = f"must hold {N_LAYERS} numbers (one per layer 0..4), got {len(sw)}"
    elif not all(math.isfinite(w) and w >= 0 for w in sw):
        e["style_weights"] = "must be finite numbers of 0 or more"

    if not (isinstance(cfg.ema, float) and math.isfinite(cfg.ema) and 0 <= cfg.ema < 1):
        e["ema"] = f"must be at least 0 and below 1 (0 = off), got {cfg.ema!r}"
    if cfg.scales:
        sc = list(cfg.scales)
        if not all(MIN_SIZE <= v <= MAX_SIZE for v in sc):
            e["scales"] = f"sizes must be between {MIN_SIZE} and {MAX_SIZE}, got {sc}"
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

    choice("optimizer", OPTIMIZERS)
    choice("layer_type", LAYER_TYPES)
    choice("mode", MODES)
    choice("pooling", POOLINGS)
    choice("precision", PRECISIONS)
    choice("executor", EXECUTORS)
    choice("tv", TV_NORMS)
    choice("style_stats", STYLE_STATS)
    if not _ray_address_ok(cfg.ray_address):
        e["ray_address"] = (
            "must be empty (start a local Ray), auto, HOST:PORT or ray://HOST:PORT; "
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
    if cfg.mode in ("reconstruct", "content", "both") and not cfg.content_layers:
        e.setdefault("content_layers", f"mode {cfg.mode!r} needs at least one content layer")
    if cfg.mode in ("reconstruct", "style", "both") and not cfg.style_layers:
        e.setdefault("style_layers", f"mode {cfg.mode!r} needs at least one style layer")
    return e


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

PATH_FIELDS = ("content_image", "style_image", "style_images", "init", "backbone")


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
    return bool(sep and host.strip() and port.isdigit()) and not any(c.isspace() for c in address)


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
