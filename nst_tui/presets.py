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
    JOB_FIELDS,
    Config,
    absolute_paths,
    job_field_message,
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
    sweep = data.pop("sweep", None)
    if sweep is not None and not isinstance(sweep, dict):
        raise ConfigError({"sweep": "must be a table of field = [values]"}, str(path))
    if sweep == {}:  # not "no sweep": a single run at defaults nobody asked for
        raise ConfigError(
            {"sweep": "is empty: give at least one field = [values], or remove the table"},
            str(path),
        )
    sweep = sweep or {}
    if base is not None:
        data = absolute_paths(data, base)
        sweep = absolute_paths(sweep, base, each=True)
    config = Config.from_dict(data, str(path))
    check_sweep(sweep, str(path))
    return Preset(path.stem, path, description.strip(), config, sweep)


def check_sweep(sweep: dict[str, Any], source: str) -> None:
    errors: dict[str, str] = {}
    for key, values in sweep.items():
        if key not in FIELD_NAMES:
            errors[f"sweep.{key}"] = unknown_field_message(key)
        elif key in JOB_FIELDS:
            errors[f"sweep.{key}"] = job_field_message(key)
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
    # Paths typed relative to the working folder: saved absolute, so the preset reads the
    # same files from its own folder (where a relative path would be read from).
    table = absolute_paths(sweep or {}, each=True)
    text = config.absolute().to_toml(description) + sweep_toml(table)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PresetError(f"preset {path}: cannot write it ({exc.strerror})") from None
    return path


def sweep_toml(sweep: dict[str, list[Any]]) -> str:
    if not sweep:
        return ""
    return "\n[sweep]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in sweep.items())
