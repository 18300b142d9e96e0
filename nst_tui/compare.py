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


# What --out's extension asks for; no extension writes PNG, as the default name does.
FORMATS = {
    ".png": "PNG",
    "": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def output_path(a: Path, b: Path, out: Path | None) -> tuple[Path, str]:
    """Where --out says to write and in which format: into a folder it names (under the
    default name), a file by its extension. A device, a FIFO or an unknown extension is
    refused before any work."""
    if out is None:
        return default_output(a, b), "PNG"
    try:
        if out.is_dir():
            return default_output(a, b, out), "PNG"
        if out.exists() and not out.is_file():
            raise RunError(f"--out {out}: not a regular file or a folder (a device?); name a file")
    except OSError as exc:  # a name too long, a loop of links
        raise RunError(f"--out {out}: cannot use it ({exc.strerror or exc})") from None
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted({k for k in FORMATS if k}))
        raise RunError(f"--out {out}: unknown image extension {out.suffix!r}; use one of {known}")
    return out, fmt


def compare(a: Path, b: Path, out: Path | None = None) -> Path:
    """Write the comparison of runs `a` and `b`; returns the file (never overwriting one).
    `out`: a file (its extension picks the format) or a folder to write it into."""
    from nst_tui.records import write_atomic
    from nst_tui.sheet import write_sheet_png

    target, fmt = output_path(a, b, out)  # a bad --out before any work
    image = compare_image(a, b)
    path = free_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "PNG":
            write_sheet_png(path, image)
        else:
            write_atomic(path, lambda fh: image.convert("RGB").save(fh, format=fmt))
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
