"""Images to tensors and back: the canvas is an RGB image in [0, 1] of shape (B, 3, H, W);
backbones convert it to whatever their network expects."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(im: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """PIL RGB -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def frame_on_device(canvas: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> H x W x 3 uint8, still on its device."""
    if canvas.dim() == 4:
        canvas = canvas[0]
    out = canvas.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.permute(1, 2, 0).contiguous()


def to_uint8(canvas: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> HxWx3 uint8 array on the host."""
    return frame_on_device(canvas).cpu().numpy()
