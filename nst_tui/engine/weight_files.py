"""What is wrong with a file that is meant to hold weights, told from its bytes.

torch.load's own errors name the wrong cause for most bad files (random bytes "hold
Python objects", zeros are "legacy .tar format", text fails with an index error), so
the file is looked at first, without torch: a `.pth` backbone can be refused before
torch has loaded.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

WANTED = "a torchvision VGG16 or VGG19 state dict (.pth)"
HEAD_BYTES = 4096
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
PICKLE_PROTO = b"\x80"  # the legacy format: pickles, protocol 2 and up
TAR_MAGIC_AT = 257  # the legacy .tar format: "ustar" in the header


class WeightFileError(Exception):
    """The reason, without the file's name (the caller adds it)."""


def weights_path(path_str: str) -> Path:
    try:
        return Path(path_str).expanduser()
    except RuntimeError:  # ~someone who has no home here
        return Path(path_str)


def check_weights_file(path: Path) -> None:
    """Raise WeightFileError saying what is wrong with `path` as a weights file, if its
    kind or its first bytes tell; a file that looks like torch.save's passes."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise WeightFileError(f"no such weights file; expected {WANTED}") from None
    except OSError as exc:  # a name too long, a loop of links, no permission on a folder
        raise WeightFileError(f"cannot open it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise WeightFileError(f"is a folder; expected {WANTED}")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise WeightFileError(f"not a regular file (a pipe or device); expected {WANTED}")
    if info.st_size == 0:
        raise WeightFileError("the file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise WeightFileError(f"cannot read it ({exc.strerror or exc})") from None
    if head.startswith(ZIP_MAGIC):
        _check_zip(path)
    elif head.startswith(PICKLE_PROTO) or head[TAR_MAGIC_AT : TAR_MAGIC_AT + 5] == b"ustar":
        return  # torch's legacy formats: torch.load tells what they hold
    elif not head.strip(b"\0"):
        raise WeightFileError(
            f"all {'zero bytes' if len(head) == info.st_size else 'zeros at the start'} "
            "(a blank or unfinished copy?)"
        )
    else:
        raise WeightFileError(_unknown(head))


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise WeightFileError(
            "a damaged or truncated zip archive (an incomplete download or copy?)"
        ) from None
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise WeightFileError(
            f"a zip archive, but not one torch.save wrote (no data.pkl among its "
            f"{len(names)} entries); expected {WANTED}"
        )


def _unknown(head: bytes) -> str:
    text = _as_text(head)
    if text is None:
        shown = head[:8].hex(" ")
        return (
            f"not a PyTorch weights file (its first bytes, {shown}, are neither torch.save's "
            "zip nor its pickle format)"
        )
    start = " ".join(text.split())
    if start.startswith("version https://git-lfs"):
        return "a Git LFS pointer, not the weights themselves (run git lfs pull)"
    if start.lower().startswith(("<!doctype html", "<html")):
        return "an HTML page, not weights (a download that saved an error page?)"
    shown = start[:40] + ("..." if len(start) > 40 else "")
    return f"a text file ({shown!r}), not weights; expected {WANTED}"


def _as_text(head: bytes) -> str | None:
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut at the end of the head
            return None
        text = head[: exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\t\r\n" for c in text)
    return text if text and printable >= 0.95 * len(text) else None
