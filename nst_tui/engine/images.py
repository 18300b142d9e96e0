"""Reading images from disk: checks, loading, fitting (PIL and numpy, never torch).

The checks here run before torch loads (nst_tui.preflight), so this module imports
none: tensors are made in nst_tui.engine.tensors.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_tui.config import MAX_SIZE, MAX_STYLE_SCALE, MIN_EDGE, RUN_INIT, Config
from nst_tui.errors import ImageError

BUILTIN_PREFIX = "builtin:"
MAX_PIXELS = 64_000_000  # beyond this a file is a decompression bomb, not a photo

Note = Callable[[str], None]


def builtin_names() -> list[str]:
    folder = resources.files("nst_tui") / "assets"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".png", ".jpg")))


def resolve_path(spec: str) -> Path:
    """A user's image reference -> a path on disk (builtin:NAME -> shipped asset)."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        if name not in builtin_names():
            raise ImageError(
                f"{spec}: no such built-in image; built-in: "
                + ", ".join(BUILTIN_PREFIX + n for n in builtin_names())
            )
        return Path(str(resources.files("nst_tui") / "assets" / name))
    try:
        return Path(spec).expanduser()
    except RuntimeError:  # ~someone who has no home here
        return Path(spec)


def _ignore(note: str) -> None:
    pass


@contextlib.contextmanager
def opened(path: Path, label: str) -> Iterator[Image.Image]:
    """An image file opened by Pillow, every way it can fail an ImageError naming it."""
    _check_file(path, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{label}: not readable (permission denied)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(
            f"{label}: {count} is more than the {MAX_PIXELS:,} allowed (a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{label}: not an image Pillow can read (JPEG, PNG, GIF, BMP, TIFF, WebP, ...)"
        ) from None
    except Exception as exc:  # Pillow raises many types for a damaged file
        raise ImageError(f"{label}: damaged or truncated image ({_first_line(exc)})") from None


def load_image(spec: str, what: str = "image", note: Note = _ignore) -> Image.Image:
    """Open an image file as upright 8-bit RGB, or raise ImageError naming it.

    `note` hears what was done that the user did not ask for (an animation's
    first frame taken); an image that cannot be used raises instead.
    """
    path = resolve_path(spec)
    label = f"{what} {spec!r}"
    with opened(path, label) as im:
        _check_pixels(im.width, im.height, label)
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            im.seek(0)
            note(f"{label}: animated ({frames} frames); using its first frame")
        check_finite(im, label)
        im = ImageOps.exif_transpose(im)
        rgb = to_rgb(im)
    w, h = rgb.size
    if min(w, h) < MIN_EDGE:
        raise ImageError(
            f"{label}: {w}x{h} pixels is too small; each side needs {MIN_EDGE} or more"
        )
    return rgb


def _check_file(path: Path, label: str) -> None:
    try:
        if not path.exists():
            raise ImageError(f"{label}: no such file")
        if path.is_dir():
            raise ImageError(f"{label}: is a folder, not an image file")
        if not path.is_file():  # a FIFO or device would block or never end
            raise ImageError(f"{label}: not a regular file")
        if path.stat().st_size == 0:
            raise ImageError(f"{label}: the file is empty (0 bytes)")
    except OSError as exc:  # a name too long, a loop of links
        raise ImageError(f"{label}: cannot open it ({exc.strerror or exc})") from None


def _check_pixels(width: int, height: int, label: str) -> None:
    """From the header alone, before anything is decoded."""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label}: {width}x{height} is {width * height:,} pixels, more than the "
            f"{MAX_PIXELS:,} allowed (a decompression bomb?)"
        )
    if min(width, height) < MIN_EDGE:
        raise ImageError(
            f"{label}: {width}x{height} pixels is too small; each side needs {MIN_EDGE} or more"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def full_scale(im: Image.Image) -> float:
    """White in a one-band image of more than 8 bits, from its type, never its values (a
    dark 16-bit photo stays dark): 16-bit modes 65535, float 1.0, a 32-bit integer TIFF
    its type's maximum; other `I` images (16-bit PGM, PNG) 65535."""
    if im.mode == "F":
        return 1.0
    if im.mode.startswith("I;16"):
        return 65535.0
    tags = getattr(im, "tag_v2", None) or {}  # a TIFF's tags; no other format has them
    bits = tags.get(258)  # TIFF BitsPerSample
    bits = bits[0] if isinstance(bits, tuple) and bits else bits
    if bits == 32:
        signed = tags.get(339) in (2, (2,))  # TIFF SampleFormat 2: signed integers
        return float(2**31 - 1 if signed else 2**32 - 1)
    return 65535.0


def check_finite(im: Image.Image, label: str) -> None:
    """A float image with NaN or infinite pixels has no colour to give them: refused."""
    if im.mode == "F":
        arr = np.asarray(im)
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.isfinite(arr).sum())
            are = "is not a finite number" if bad == 1 else "are not finite numbers"
            raise ImageError(
                f"{label}: {bad:,} of its {arr.size:,} pixels {are} (NaN or infinity); "
                "fix or re-export the image"
            )


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)  # load_image refused them
        scaled = (arr / full_scale(im) * 255).clip(0, 255)
        im = Image.fromarray(scaled.astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def fit_canvas(
    im: Image.Image, size: int, what: str = "image", style_of: Config | None = None
) -> Image.Image:
    """fit_long_edge, refusing a result the network cannot see (a short side below MIN_EDGE).
    `style_of`: `size` is that config's size * style_scale, and the hint says style_scale."""
    if style_of is None:
        check_fit(*im.size, size, what)
    else:
        at = f"size {style_of.size} * style_scale {style_of.style_scale:g} = {size} px"
        check_fit(*im.size, size, what, setting="style_scale", per=style_of.size, at=at)
    return fit_long_edge(im, size)


def check_fit(
    w: int,
    h: int,
    size: int,
    what: str = "image",
    *,
    setting: str = "size",
    per: float = 1.0,
    at: str = "",
) -> None:
    """A w x h image scaled to `size` on its long edge keeps a short side of MIN_EDGE.

    `size` is the value of `setting` (size, scales or style_scale) times `per`; `at` says
    so in the message (default `size N`). The hint is a value of that setting that fits
    and is allowed, or none."""
    short = short_side(w, h, size)
    if short < MIN_EDGE:
        need = math.floor((MIN_EDGE - 0.5) * max(w, h) / min(w, h))
        while short_side(w, h, need) < MIN_EDGE:  # a step or two: the long edge that fits
            need += 1
        raise ImageError(
            f"{what}: {w}x{h} is too narrow for {at or f'size {size}'} (its short side "
            f"would be {short} px, {MIN_EDGE} needed); {fit_hint(need, setting, per)}"
        )


def short_side(w: int, h: int, size: int) -> int:
    """The short side of a w x h image scaled (fit_long_edge) to `size` on its long edge."""
    scale = size / max(w, h)
    return min(max(1, round(w * scale)), max(1, round(h * scale)))


def fit_hint(need: int, setting: str, per: float = 1.0) -> str:
    """What to change so the long edge, `setting` times `per` rounded, reaches `need` px:
    the least value that works, if allowed; else only the crop."""
    if setting == "style_scale":  # in hundredths
        k = max(1, math.floor((need - 0.5) * 100 / per) - 1)
        while round(per * (k / 100)) < need:  # as the engine rounds size * style_scale
            k += 1
        if k / 100 <= MAX_STYLE_SCALE:
            return f"use style_scale {k / 100:g} or more, or crop it"
        return f"no style_scale up to {MAX_STYLE_SCALE:g} fits it at size {per:g}; crop it"
    value = max(1, math.floor((need - 0.5) / per) - 1)
    while max(1, round(value * per)) < need:
        value += 1
    if value > MAX_SIZE:
        return f"no {setting} up to {MAX_SIZE} fits it; crop it"
    if setting == "scales":
        return f"make every scale {value} or more, or crop it"
    return f"use {setting} {value} or more, or crop it"


def fit_long_edge(im: Image.Image, size: int) -> Image.Image:
    """Scale so the long edge is `size`, keeping the aspect ratio."""
    w, h = im.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(new, Image.Resampling.LANCZOS)


# ---- checks before torch loads -------------------------------------------------------


def check_image(spec: str, what: str) -> tuple[int, int]:
    """What can be told of an image without loading torch: it exists, opens, is not too
    large nor too small, and a float image's pixels are finite (only such an image is
    decoded). Returns its width and height, for check_fit; `load_image` decodes it later."""
    path = resolve_path(spec)
    label = f"{what} {spec!r}"
    with opened(path, label) as im:
        w, h = im.size
        _check_pixels(w, h, label)
        if im.mode == "F":  # the dashboard checks on every key: each version decoded once
            stat = path.stat()
            key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
            if key not in _FINITE:
                check_finite(im, label)
                _FINITE.add(key)
    return w, h


_FINITE: set[tuple[str, int, int]] = set()  # float image files found finite, by version


def run_final(folder_text: str) -> Path:
    """The final.png of the run folder `init = "run:FOLDER"` names, if that run's record
    says it is a result to go on from: finished, or cancelled (saved as it stood). A run
    that failed, or was killed before it wrote its record, is refused, saying which."""
    folder = Path(folder_text.strip()).expanduser()
    where = f"init: {RUN_INIT}{folder}"
    if not folder.is_dir():
        raise ImageError(f"{where} is not a folder; name an earlier run's folder")
    record = folder / "run.json"
    if record.exists():
        try:
            info = json.loads(record.read_text(encoding="utf-8"))
            status = info.get("status") if isinstance(info, dict) else None
        except (OSError, ValueError) as exc:  # UnicodeDecodeError, JSONDecodeError
            raise ImageError(f"{where}: its run.json is unreadable ({_first_line(exc)})") from None
        if status == "failed":
            reason = str(info.get("reason") or "no reason recorded")[:200]
            raise ImageError(
                f"{where}: that run failed ({' '.join(reason.split())}); its final.png is "
                "not a result to continue from"
            )
        if status == "running":
            raise ImageError(
                f"{where}: that run was interrupted (its run.json still says running: "
                "killed, or still going); continue from a finished or cancelled run"
            )
        if status == "not run" or str(info.get("reason", "")).startswith("not run"):
            raise ImageError(
                f"{where}: that sweep cell never ran (its sweep stopped first); "
                "continue from a finished or cancelled run"
            )
        if status not in ("finished", "cancelled"):
            raise ImageError(f"{where}: its run.json has an unknown status {status!r}")
    elif (folder / "config.toml").exists():
        raise ImageError(
            f"{where}: that run was interrupted (no run.json): it never finished; "
            "continue from a finished or cancelled run"
        )
    final = folder / "final.png"
    if not final.is_file():
        if (folder / "sweep.json").exists():
            raise ImageError(f"{where} is a sweep folder; name one of its cells' folders")
        raise ImageError(
            f"{where} has no final.png (not a run folder, or a run that never finished)"
        )
    return final
