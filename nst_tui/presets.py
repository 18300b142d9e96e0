"""Finding, listing, loading and saving presets.

A preset is a TOML file: a `description`, any Config fields (the rest keep
their defaults), and optionally a `[sweep]` table mapping fields to lists of
values. Presets are data only: nothing in them is executed.

Search order for a name: ./presets of the working folder, the user's preset
folder ($NST_TUI_PRESETS or ~/.config/nst-tui/presets, where the dashboard
saves), then the presets shipped with the package.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst_tui.config import (
    FIELD_NAMES,
    INITS,
    RUN_INIT,
    Config,
    toml_value,
    unknown_field_message,
)
from nst_tui.errors import ConfigError, PresetError

MAX_BYTES = 1 << 20  # a preset is a page of text; anything bigger is the wrong file


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    config: Config
    sweep: dict[str, list[Any]] = field(default_factory=dict)


def shipped_dir() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "presets"  # a wheel carries them inside the package
    return packaged if packaged.is_dir() else here.parent / "presets"  # a source checkout


def user_dir() -> Path:
    env = os.environ.get("NST_TUI_PRESETS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "nst-tui" / "presets"


def search_dirs() -> list[Path]:
    try:
        here = [Path.cwd() / "presets"]
    except OSError:  # the working folder was deleted under a long session
        here = []
    dirs = [*here, user_dir(), shipped_dir()]
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def find(name_or_path: str) -> Path:
    """A preset name (`quick`) or a path to a TOML file -> the file."""
    try:
        as_path = Path(name_or_path).expanduser()
    except RuntimeError:  # ~someone who has no home here
        as_path = Path(name_or_path)
    try:
        if as_path.suffix == ".toml" or os.sep in name_or_path:
            if as_path.is_file():
                return as_path
            what = "is a folder" if as_path.is_dir() else "no such file"
            raise PresetError(f"preset {name_or_path!r}: {what}")
        for d in search_dirs():
            candidate = d / f"{name_or_path}.toml"
            if candidate.is_file():
                return candidate
    except OSError as exc:  # a name too long for the file system
        raise PresetError(f"preset {name_or_path!r}: cannot open it ({exc.strerror})") from None
    names = [p.stem for p in all_paths()]
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see `nst-tui presets`"
    raise PresetError(f"preset {name_or_path!r}: not found; {hint}")


def all_paths() -> list[Path]:
    """Every preset file, the first of each name winning (search order)."""
    found: dict[str, Path] = {}
    for d in search_dirs():
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return sorted(found.values(), key=lambda p: p.stem)


def load(name_or_path: str) -> Preset:
    path = find(name_or_path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PresetError(f"preset {path}: {size:,} bytes; a preset is at most {MAX_BYTES:,}")
        # utf-8-sig: a byte-order mark, as some editors write, is not an error
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PresetError(f"preset {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise PresetError(f"preset {path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, path, base=path.parent)


def parse(text: str, path: Path, base: Path | None = None) -> Preset:
    """TOML text -> Preset; anything else raises PresetError or ConfigError naming the fault.

    With `base` (the preset file's folder, as `load` passes it), relative image, init and
    .pth paths, in the fields and in the [sweep] table, are read from that folder."""
    try:
        data = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer past 4300 digits
        raise PresetError(f"preset {path}: invalid TOML ({exc})") from None
    except RecursionError:
        raise PresetError(f"preset {path}: invalid TOML (nested too deeply)") from None
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise ConfigError({"description": "must be a string"}, str(path))
    sweep = data.pop("sweep", {})
    if not isinstance(sweep, dict):
        raise ConfigError({"sweep": "must be a table of field = [values]"}, str(path))
    if base is not None:
        data = resolve_paths(data, base)
        sweep = {k: resolve_paths({k: v}, base, each=True)[k] for k, v in sweep.items()}
    config = Config.from_dict(data, str(path))
    check_sweep(sweep, str(path))
    return Preset(path.stem, path, description.strip(), config, sweep)


PATH_FIELDS = ("content_image", "style_image", "style_images", "init", "backbone")


def resolve_paths(values: dict[str, Any], base: Path, each: bool = False) -> dict[str, Any]:
    """`values` with relative paths made absolute from `base`: content_image,
    style_image, style_images, init (a path or run:FOLDER) and backbone (a .pth path).
    builtin:NAME, the init and backbone keywords, absolute and ~ paths stay as they are;
    `each`: every value is a list of values for the field (a [sweep] table's column)."""
    out = dict(values)
    for key in PATH_FIELDS:
        if key in out:
            value = out[key]
            if each and isinstance(value, list):
                out[key] = [_resolve_field(key, v, base) for v in value]
            else:
                out[key] = _resolve_field(key, value, base)
    return out


def _resolve_field(key: str, value: Any, base: Path) -> Any:
    if key == "style_images" and isinstance(value, list):
        return [_resolve(v, base) for v in value]
    if not isinstance(value, str):
        return value  # Config.from_dict names the wrong type
    if key == "init" and value.startswith(RUN_INIT):
        return RUN_INIT + _resolve(value[len(RUN_INIT) :], base)
    if (key == "init" and value in INITS) or (
        key == "backbone" and not value.endswith((".pth", ".pt"))
    ):
        return value
    return _resolve(value, base)


def _resolve(spec: Any, base: Path) -> Any:
    if not isinstance(spec, str) or not spec.strip() or spec.startswith(("builtin:", "~")):
        return spec
    if os.path.isabs(spec):
        return spec
    return os.path.normpath(os.path.join(os.path.abspath(base), spec))


def check_sweep(sweep: dict[str, Any], source: str) -> None:
    errors: dict[str, str] = {}
    for key, values in sweep.items():
        if key not in FIELD_NAMES:
            errors[f"sweep.{key}"] = unknown_field_message(key)
        elif not isinstance(values, list) or not values:
            errors[f"sweep.{key}"] = "must be a non-empty list of values"
    if errors:
        raise ConfigError(errors, source)


def save(
    config: Config,
    name: str,
    description: str = "",
    overwrite: bool = False,
    sweep: dict[str, list[Any]] | None = None,
) -> Path:
    """Write a preset (with its [sweep] table, if any) to the user's preset folder; never
    clobbers unless asked."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise PresetError(
            f"preset name {name!r}: use letters, digits, '.', '_' or '-' (64 at most)"
        )
    folder = user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PresetError(f"preset folder {folder}: cannot create it ({exc.strerror})") from None
    path = folder / f"{name}.toml"
    if path.exists() and not overwrite:
        raise PresetError(f"preset {name!r} already exists at {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(config.to_toml(description) + sweep_toml(sweep or {}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PresetError(f"preset {path}: cannot write it ({exc.strerror})") from None
    return path


def sweep_toml(sweep: dict[str, list[Any]]) -> str:
    if not sweep:
        return ""
    return "\n[sweep]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in sweep.items())
