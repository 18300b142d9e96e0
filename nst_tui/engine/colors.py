"""Original colours: the result's luminance with the content image's chroma.

Gatys et al.'s "luminance-only transfer", applied to the images a run shows and
saves (frames, final image), never inside the loss: the optimisation is the
same with or without it. YIQ keeps luminance (Y) apart from chroma (I, Q) with
a linear map, so the swap is exact wherever the result stays inside [0, 1].
"""

from __future__ import annotations

import torch

# NTSC RGB -> YIQ; rows give Y, I, Q.
RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ]
)
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)


_on_device: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}


def _matrix(name: str, like: torch.Tensor) -> torch.Tensor:
    # Copied to a GPU once: a copy from host memory makes the host wait for the device,
    # and frames are made while the optimizer runs.
    key = (name, like.device, like.dtype)
    if key not in _on_device:
        _on_device[key] = (RGB_TO_YIQ if name == "rgb_to_yiq" else YIQ_TO_RGB).to(like)
    return _on_device[key]


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YIQ, channel by channel."""
    return torch.einsum("ij,bjhw->bihw", _matrix("rgb_to_yiq", image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _matrix("yiq_to_rgb", image), image)


def keep_colors(canvas: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The canvas's luminance with the content's chroma, clamped to [0, 1].

    `content` is (1, 3, H, W) at the canvas's size and broadcasts over a batch.
    """
    with torch.no_grad():
        y = rgb_to_yiq(canvas.detach())[:, :1]
        iq = rgb_to_yiq(content)[:, 1:].expand(y.shape[0], -1, -1, -1)
        return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def shown(canvas: torch.Tensor, colors: torch.Tensor | None) -> torch.Tensor:
    """The image a run shows and saves for `canvas`: as is, or with `colors`' chroma."""
    return canvas if colors is None else keep_colors(canvas, colors)
