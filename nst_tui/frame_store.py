"""A run folder's pictures, as the dashboard's previews, the viewer and the frame stepper
read them: its saved frames (each with its iteration and losses) and its final image.

Torch-free and widget-free; every read decodes a file, so call it off the UI thread.
Frames come from one place, `FrameStore.frames`, whatever holds them:

    .frames/NNNNNNNNN.png   a running run's frames (the recorder's, named by iteration)
    frames/NNNNNNNNN.png    a run finished in a hurry (no GIF), its frames kept
    animation.gif           a finished run: one GIF frame per saved frame, in order

A GIF frame's iteration is the k-th row of losses.csv (a frame and a row are logged at
the same iterations: every sav_freq and the last), else k * sav_freq. A run folder from
an older version, or one whose frames were never written, has none: `why_none` says so.
Reads are downscaled to the size asked for (`longest`), so a 4096 px canvas never
reaches a widget whole unless a crop of it is asked for at 1:1.
"""

from __future__ import annotations

import csv
import json
import threading
import tomllib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

Box = tuple[int, int, int, int]  # left, top, right, bottom in image pixels
CACHE_BYTES = 96 << 20  # decoded GIF frames kept for stepping back and forth


class FrameError(Exception):
    """A frame or image that cannot be read; its message says which and why."""


@dataclass(frozen=True)
class FrameInfo:
    """The k-th saved frame (0-based) of a run: at which iteration, with which losses."""

    index: int
    iteration: int
    losses: dict[str, float] = field(default_factory=dict, compare=False)
    path: Path | None = field(default=None, compare=False)  # its PNG; None: a GIF frame


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _positive_int(value: object, default: int) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default
    )


def read_losses(path: Path) -> list[tuple[int, dict[str, float]]]:
    """losses.csv's rows (iteration, losses); a damaged row is skipped, a missing file empty."""
    rows: list[tuple[int, dict[str, float]]] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    iteration = int(row.get("iteration") or "")
                except ValueError:
                    continue
                losses = {}
                for key, value in row.items():
                    if key in (None, "iteration", "elapsed_s") or not value:
                        continue
                    try:
                        losses[str(key)] = float(value)
                    except (TypeError, ValueError):
                        continue
                rows.append((iteration, losses))
    except (OSError, UnicodeDecodeError, csv.Error):
        return rows
    return rows


def downscaled(image: Image.Image, longest: int | None) -> Image.Image:
    """`image` (RGB) no longer than `longest` on either edge; reduce() first for speed."""
    image = image.convert("RGB")
    if longest is None or max(image.size) <= longest:
        return image
    factor = max(image.size) // longest
    if factor >= 2:
        image = image.reduce(factor)  # a box filter by an integer: fast on huge images
    if max(image.size) > longest:
        scale = longest / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return image


def open_image(path: Path, longest: int | None = None, box: Box | None = None) -> Image.Image:
    """`path` decoded (a `box` of it at full resolution, or all of it), no longer than
    `longest`. FrameError names the file and why, for a missing, cut or foreign file."""
    try:
        with Image.open(path) as im:
            if box is not None:
                return downscaled(im.crop(box), longest)
            im.draft("RGB", (longest, longest) if longest else im.size)  # JPEG: cheap
            return downscaled(im, longest)
    except FileNotFoundError:
        raise FrameError(f"{path.name} is missing") from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameError(f"{path.name} cannot be read ({exc})") from None


def image_size(path: Path) -> tuple[int, int]:
    """The pixel size from the header only (no decoding)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FrameError(f"{path.name} is missing") from None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameError(f"{path.name} cannot be read ({exc})") from None


class FrameStore:
    """One run folder's frames and final image. Safe to share between threads."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        config = _read_toml(self.folder / "config.toml")
        self.sav_freq = _positive_int(config.get("sav_freq"), 10)
        self.fps = _positive_int(config.get("fps"), 30)
        self.iterations = _positive_int(config.get("iterations"), 0)
        self._lock = threading.Lock()
        self._gif: Image.Image | None = None  # kept open: stepping forward decodes one frame
        self._gif_at = -1
        self._cache: OrderedDict[tuple[int, int | None], Image.Image] = OrderedDict()
        self._cached_bytes = 0

    # ---- what there is ---------------------------------------------------------------
    def frame_files(self) -> list[Path]:
        """The per-frame PNGs, if any: a running run's, or a hurried run's kept ones."""
        for name in (".frames", "frames"):
            where = self.folder / name
            try:
                files = sorted(p for p in where.glob("*.png") if p.stem.isdigit())
            except OSError:
                continue
            if files:
                return files
        return []

    @property
    def gif(self) -> Path:
        return self.folder / "animation.gif"

    @property
    def final_path(self) -> Path:
        return self.folder / "final.png"

    def frames(self) -> list[FrameInfo]:
        """Every saved frame, in order, with its iteration and losses (listed again on each
        call: a running run's grow)."""
        rows = read_losses(self.folder / "losses.csv")
        by_iteration = dict(rows)
        files = self.frame_files()
        if files:
            out = []
            for k, path in enumerate(files):
                iteration = int(path.stem)
                out.append(FrameInfo(k, iteration, by_iteration.get(iteration, {}), path))
            return out
        count = self._gif_frames()
        if count == 0:
            return []
        if len(rows) == count:
            return [FrameInfo(k, it, losses) for k, (it, losses) in enumerate(rows)]
        out = []
        for k in range(count):
            iteration = (k + 1) * self.sav_freq
            if self.iterations:
                iteration = min(iteration, self.iterations)
            out.append(FrameInfo(k, iteration, by_iteration.get(iteration, {})))
        return out

    def _gif_frames(self) -> int:
        """How many frames animation.gif holds (0 without one); run.json's count if it says."""
        if not self.gif.is_file():
            return 0
        try:
            count = json.loads((self.folder / "run.json").read_text(encoding="utf-8"))["frames"]
            if isinstance(count, int) and count > 0:
                return count
        except (OSError, ValueError, KeyError, TypeError):
            pass
        try:
            with Image.open(self.gif) as im:
                return int(getattr(im, "n_frames", 1))
        except (OSError, UnidentifiedImageError, ValueError):
            return 0

    def why_none(self) -> str:
        """What to tell a user when `frames()` is empty."""
        if not self.folder.is_dir():
            return f"{self.folder} is not a folder (moved or deleted?)"
        if self.gif.is_file():
            return f"{self.gif.name} in {self.folder.name} cannot be read"
        if (self.folder / "run.json").is_file() or (self.folder / "config.toml").is_file():
            return (
                f"{self.folder.name} has no saved frames (no animation.gif or frames/): "
                "a run from an older version, or one stopped before its first frame"
            )
        return f"{self.folder.name} is not a run folder"

    # ---- pictures (off the UI thread) --------------------------------------------------
    def size_of(self, frame: FrameInfo) -> tuple[int, int]:
        """A frame's full size, from its file's header."""
        return image_size(frame.path if frame.path is not None else self.gif)

    def final(self, longest: int | None = None, box: Box | None = None) -> Image.Image:
        return open_image(self.final_path, longest, box)

    def load(
        self, frame: FrameInfo, longest: int | None = None, box: Box | None = None
    ) -> Image.Image:
        """Frame `frame`, downscaled to `longest` (or a `box` of it at full resolution).
        FrameError when its file is missing or damaged."""
        if frame.path is not None:
            return open_image(frame.path, longest, box)
        key = (frame.index, longest if box is None else -1)
        with self._lock:
            if box is None and key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            image = self._gif_frame(frame.index)
        if box is not None:
            return downscaled(image.crop(box), longest)
        small = downscaled(image, longest)
        with self._lock:
            self._remember(key, small)
        return small

    def _gif_frame(self, index: int) -> Image.Image:
        """GIF frame `index` as RGB (under the lock). The GIF stays open: Pillow decodes
        forward from the frame it is at (a step back starts again from the first)."""
        try:
            if self._gif is None:
                self._gif = Image.open(self.gif)
            gif = self._gif
            if index >= int(getattr(gif, "n_frames", 1)):
                raise FrameError(f"{self.gif.name} has no frame {index + 1}")
            gif.seek(index)
            self._gif_at = index
            return gif.convert("RGB")
        except FrameError:
            raise
        except FileNotFoundError:
            self._close_gif()
            raise FrameError(f"{self.gif.name} is missing") from None
        except (OSError, UnidentifiedImageError, ValueError, EOFError) as exc:
            self._close_gif()
            raise FrameError(f"{self.gif.name} frame {index + 1} cannot be read ({exc})") from None

    def _close_gif(self) -> None:
        if self._gif is not None:
            self._gif.close()
        self._gif, self._gif_at = None, -1

    def _remember(self, key: tuple[int, int | None], image: Image.Image) -> None:
        size = image.width * image.height * 3
        if key in self._cache:
            return
        self._cache[key] = image
        self._cached_bytes += size
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached_bytes -= old.width * old.height * 3

    def close(self) -> None:
        with self._lock:
            self._close_gif()
            self._cache.clear()
            self._cached_bytes = 0
