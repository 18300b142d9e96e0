"""`nst-tui compare A B`: two runs' final images side by side, labelled by what differs.

Each run folder's config.toml says how it was made; the labels are the fields
whose values differ between the two (Config.differences), each run with its own
value, so the picture says what the comparison is about.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from nst_tui.config import Config, toml_value
from nst_tui.errors import NSTError, RunError
from nst_tui.records import interruption

RUN_FILES = ("final.png", "config.toml")
MAX_LABEL_VALUE = 40  # characters of one value (a long path) kept in a label


def run_config(folder: Path) -> Config:
    """The config a run folder records; RunError when `folder` is not a run folder."""
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    interrupted = interruption(folder)
    if interrupted and "final.png" in missing:
        raise RunError(f"{folder} is an interrupted run ({interrupted}): it has no final image")
    if not folder.is_dir() or missing:
        why = "no such folder" if not folder.is_dir() else f"no {' or '.join(missing)}"
        raise RunError(f"{folder} is not a run folder ({why})")
    from nst_tui import presets

    try:
        return presets.parse((folder / "config.toml").read_text(encoding="utf-8"), folder).config
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{folder}/config.toml cannot be read: {exc}") from None
    except NSTError as exc:
        raise RunError(f"{folder}/config.toml is not a valid config: {exc}") from None


def label(name: str, values: dict[str, object]) -> str:
    def short(v: object) -> str:
        text = toml_value(v)
        return text if len(text) <= MAX_LABEL_VALUE else "…" + text[-MAX_LABEL_VALUE:]

    parts = [f"{k}={short(v)}" for k, v in values.items()]
    return f"{name}: " + (", ".join(parts) if parts else "same config")


def compare_image(a: Path, b: Path) -> Image.Image:
    """The side-by-side sheet of runs `a` and `b`."""
    from nst_tui.sheet import render_sheet

    label_a, label_b = labels(a, b)
    n = len(run_config(a).differences(run_config(b)))
    images = []
    for folder in (a, b):
        try:
            with Image.open(folder / "final.png") as im:
                images.append(im.convert("RGB"))
        except OSError as exc:
            raise RunError(f"{folder}/final.png cannot be read: {exc}") from None
    title = f"{a.name} vs {b.name}: {n} differing parameter{'s' * (n != 1)}"
    return render_sheet([images], [""], [label_a, label_b], title)


def labels(a: Path, b: Path) -> tuple[str, str]:
    """Each run's name and its own values of the fields that differ between the two."""
    cfg_a, cfg_b = run_config(a), run_config(b)
    differ = cfg_a.differences(cfg_b)
    return (
        label(a.name, {k: getattr(cfg_a, k) for k in differ}),
        label(b.name, {k: getattr(cfg_b, k) for k in differ}),
    )


def free_path(path: Path) -> Path:
    """`path`, or the first of path-2.png, path-3.png, ... that does not exist yet."""
    candidate, n = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def default_output(a: Path, b: Path, where: Path | None = None) -> Path:
    return (where or Path.cwd()) / f"compare-{a.resolve().name}-{b.resolve().name}.png"


def compare(a: Path, b: Path, out: Path | None = None) -> Path:
    """Write the comparison of runs `a` and `b`; returns the file (never overwriting one)."""
    from nst_tui.sheet import write_sheet_png

    image = compare_image(a, b)
    path = free_path(out if out is not None else default_output(a, b))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_sheet_png(path, image)
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc}") from None
    return path
