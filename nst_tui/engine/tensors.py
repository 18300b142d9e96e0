"""Images to tensors and back: the canvas is an RGB image in [0, 1] of shape (B, 3, H, W);
backbones convert it to whatever their network expects."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def to_tensor(im: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL RGB -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


# The long edge of a saved frame (the GIF's, the previews', the frames a run keeps): a
# canvas larger than this is shown downscaled, so that no copy of a 8192 px canvas is kept
# per saved frame. final.png (Finished.image) stays full size.
FRAME_EDGE = 1024


def frame_on_device(canvas: torch.Tensor, longest: int | None = FRAME_EDGE) -> torch.Tensor:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> H x W x 3 uint8, still on its device;
    downscaled (antialiased) to `longest` px on its long edge where larger (None: never)."""
    if canvas.dim() == 3:
        canvas = canvas[None]
    canvas = canvas[:1].detach()
    h, w = canvas.shape[-2:]
    if longest is not None and max(h, w) > longest:
        scale = longest / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        canvas = F.interpolate(
            canvas.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
    out = canvas[0].clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.permute(1, 2, 0).contiguous()


def to_uint8(canvas: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> HxWx3 uint8 array on the host, full size."""
    return frame_on_device(canvas, None).cpu().numpy()
