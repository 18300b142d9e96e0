"""The three loss terms, reduced per sample so a batch of canvases gives one
value per canvas (a sweep's cells share a forward pass but not their losses).

- content: mean squared error between feature maps.
- style: mean squared error between Gram matrices. The Gram is normalised by
  C*H*W (as in PyTorch's tutorial) so it does not grow with image size; the
  study's per-layer weights (1e3/n^2) then balance the layers.
- total variation: mean absolute difference of neighbouring pixels, over all
  horizontal and vertical neighbour pairs.
"""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), divided by C*H*W."""
    b, c, h, w = features.shape
    if not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
        # Channels-last features (GPU runs) are (B, H*W, C) in memory: a free view,
        # where reshaping to (B, C, H*W) would copy the whole map.
        f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        return torch.bmm(f.transpose(1, 2), f) / (c * h * w)
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE; `target` (1 or B, C, H, W) broadcasts over the batch."""
    return (features - target).pow(2).mean(dim=(1, 2, 3))


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE between the canvas's Gram and the style's (1 or B, C, C)."""
    return (gram(features) - target_gram).pow(2).mean(dim=(1, 2))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |difference| over every pair of 4-neighbouring pixels."""
    dv = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs()
    dh = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs()
    n = dv[0].numel() + dh[0].numel()
    return (dv.sum(dim=(1, 2, 3)) + dh.sum(dim=(1, 2, 3))) / n


# normalize_style_weights. The Gram above is divided by C*H*W, so for two layers whose
# channels carry alike statistics, each Gram entry scales as 1/C and the mean squared
# difference over its C*C entries as 1/C^2: a wide layer's term comes out C^2 times
# smaller than a narrow one's, and a per-layer weight means less the wider its layer.
# Multiplying the term by (C / REFERENCE_WIDTH)^2 (equivalently: the Gram divided by
# H*W only, the squared-difference mean divided by REFERENCE_WIDTH^2) cancels that, so
# equal weights give comparable terms whatever the widths. REFERENCE_WIDTH is conv1_1's
# width: a 64-channel layer's term is left as it is.
REFERENCE_WIDTH = 64


def style_width_factor(channels: int, normalize: bool) -> float:
    """What a style layer of `channels` channels is multiplied by (1 when not normalizing)."""
    return (channels / REFERENCE_WIDTH) ** 2 if normalize else 1.0
