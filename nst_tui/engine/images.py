"""Reading images from disk and moving them between PIL, numpy and tensors.

The canvas is always an RGB image in [0, 1] of shape (B, 3, H, W); backbones
convert it to whatever their network expects.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from nst_tui.errors import ImageError

BUILTIN_PREFIX = "builtin:"
MAX_PIXELS = 64_000_000  # beyond this a file is a decompression bomb, not a photo


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
    return Path(spec).expanduser()


def load_image(spec: str, what: str = "image") -> Image.Image:
    """Open an image file as upright 8-bit RGB, or raise ImageError naming it."""
    path = resolve_path(spec)
    label = f"{what} {spec!r}"
    if not path.exists():
        raise ImageError(f"{label}: no such file")
    if path.is_dir():
        raise ImageError(f"{label}: is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(
                        f"{label}: {im.width}x{im.height} pixels is more than "
                        f"{MAX_PIXELS:,} allowed"
                    )
                im.seek(0)  # animated files: the first frame
                im = ImageOps.exif_transpose(im)
                return to_rgb(im)
    except ImageError:
        raise
    except PermissionError:
        raise ImageError(f"{label}: not readable (permission denied)") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{label}: too many pixels (decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"{label}: not a readable image ({exc})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray((arr / top * 255).clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def fit_long_edge(im: Image.Image, size: int) -> Image.Image:
    """Scale so the long edge is `size`, keeping the aspect ratio."""
    w, h = im.size
    scale = size / max(w, h)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(new, Image.Resampling.LANCZOS)


def to_tensor(im: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL RGB -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def to_uint8(canvas: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> HxWx3 uint8 array on the host."""
    if canvas.dim() == 4:
        canvas = canvas[0]
    out = canvas.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.permute(1, 2, 0).cpu().numpy()
