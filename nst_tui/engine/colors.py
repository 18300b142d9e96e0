"""Original colours: the result's luminance with the content image's chroma.

Gatys et al.'s "luminance-only transfer", applied to the images a run shows and
saves (frames, final image), never inside the loss: the optimisation is the
same with or without it. YIQ keeps luminance (Y) apart from chroma (I, Q) with
a linear map, so the swap is exact wherever the result stays inside [0, 1].
"""

from __future__ import annotations

import torch

# NTSC RGB -> YIQ; rows give Y, I, Q.
RGB_TO_YIQ = (
    (0.299, 0.587, 0.114),
    (0.595716, -0.274453, -0.321263),
    (0.211456, -0.522591, 0.311135),
)
YIQ_TO_RGB = tuple(
    map(tuple, torch.linalg.inv(torch.tensor(RGB_TO_YIQ, dtype=torch.float64)).tolist())
)


def _mix(matrix: tuple[tuple[float, ...], ...], image: torch.Tensor) -> torch.Tensor:
    # The matrix as Python numbers, never a tensor: a tensor would have to be copied from
    # host memory to the image's device, and on a GPU that copy makes the host wait, while
    # frames are made as the optimizer runs.
    r, g, b = image.unbind(1)
    return torch.stack([m0 * r + m1 * g + m2 * b for m0, m1, m2 in matrix], dim=1)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YIQ, channel by channel."""
    return _mix(RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _mix(YIQ_TO_RGB, image)


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
