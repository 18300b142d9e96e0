"""The three loss terms, reduced per sample so a batch of canvases gives one
value per canvas (a sweep's cells share a forward pass but not their losses).

- content: mean squared error between feature maps.
- style: mean squared error between Gram matrices. The Gram is normalised by
  C*H*W (as in PyTorch's tutorial) so it does not grow with image size; the
  study's per-layer weights (1e3/n^2) then balance the layers.
- total variation: mean absolute difference of neighbouring pixels, over all
  horizontal and vertical neighbour pairs (the study's, L1), or their mean squared
  difference (L2: it punishes single-pixel noise hard and gentle slopes little, where
  L1 favours flat blocks).

Two more style statistics, beside the Gram matrix:
- w2: the Wasserstein-2 distance between Gaussians fitted to the canvas's and the
  style's features (mean and covariance), as in crowsonkb's style-transfer-pytorch;
- histogram: each channel's values remapped onto the style's sorted values (Risser
  et al. 2017, "Stable and Controllable Neural Texture Synthesis and Style Transfer"),
  the squared distance to that remapping; it pins what a Gram matrix leaves free (a
  channel's spread), which keeps colours and contrast from drifting.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    return gram_distance(gram(features), target_gram)


def gram_distance(canvas_gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """style_loss from the canvas's Gram (B, C, C) itself (tiles accumulate it)."""
    return (canvas_gram - target_gram).pow(2).mean(dim=(1, 2))


def tv_loss(image: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Per-sample mean |difference| (squared: mean squared difference) over every pair of
    4-neighbouring pixels."""
    dv = image[:, :, 1:, :] - image[:, :, :-1, :]
    dh = image[:, :, :, 1:] - image[:, :, :, :-1]
    dv, dh = (dv.square(), dh.square()) if squared else (dv.abs(), dh.abs())
    n = dv[0].numel() + dh[0].numel()
    return (dv.sum(dim=(1, 2, 3)) + dh.sum(dim=(1, 2, 3))) / n


def moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> each channel's mean (B, C) and the covariance (B, C, C) over
    positions."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    mean = f.mean(-1)
    centred = f - mean[..., None]
    return mean, torch.bmm(centred, centred.transpose(1, 2)) / (h * w)


def sqrtm_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix (negative rounding
    in its eigenvalues taken as 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    root: torch.Tensor = (
        vectors @ torch.diag_embed(values.clamp_min(0).sqrt()) @ vectors.transpose(-2, -1)
    )
    return root


@dataclass
class W2Target:
    """The style's Gaussian: mean (1, C), covariance's square root (1, C, C) and trace (1,)."""

    mean: torch.Tensor
    cov_sqrt: torch.Tensor
    cov_trace: torch.Tensor

    @classmethod
    def of(cls, features: torch.Tensor) -> W2Target:
        return cls.of_moments(*moments(features))

    @classmethod
    def of_moments(cls, mean: torch.Tensor, cov: torch.Tensor) -> W2Target:
        trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)
        return cls(mean, sqrtm_psd(cov.double()).float(), trace)

    def energy(self) -> float:
        """E|f|^2 of the style's features: what w2 is relative to when normalised."""
        return float(self.cov_trace.sum() + self.mean.pow(2).sum())


# sqrt(x) has no bounded gradient at 0, and a layer's covariance is often rank-deficient
# (conv1_1's 64 channels mix 27 input values), its zero eigenvalues float32 rounding
# noise that a square root would magnify. Eigenvalues are floored at this fraction of the
# product's mean diagonal (which scales with the features, so the distance does not
# change with their scale); what it costs: about 1e-3 of each eigenvalue's square root.
W2_EIGEN_FLOOR = 1e-6


def w2_loss(features: torch.Tensor, mean: torch.Tensor, cov_sqrt: torch.Tensor,
            cov_trace: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Per-sample squared Wasserstein-2 distance between the Gaussians of the canvas's
    features and the style's: |m - m_s|^2 + tr(S) + tr(S_s) - 2 tr((S_s^1/2 S S_s^1/2)^1/2).
    Only eigenvalues of the product are needed (their square roots sum to the last trace),
    and their gradient does not divide by eigenvalue gaps as eigenvectors' would."""
    return w2_distance(*moments(features), mean, cov_sqrt, cov_trace)


def w2_distance(m: torch.Tensor, cov: torch.Tensor, mean: torch.Tensor, cov_sqrt: torch.Tensor,
                cov_trace: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """w2_loss from the canvas's moments (mean (B, C), covariance (B, C, C)) themselves
    (tiles accumulate them)."""
    product = cov_sqrt @ cov @ cov_sqrt
    product = (product + product.transpose(-2, -1)) / 2  # exactly symmetric for eigvalsh
    scale = product.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[:, None]
    values = torch.linalg.eigvalsh(product.double()).float()
    floor = W2_EIGEN_FLOOR * scale
    # sqrt(x + floor) - sqrt(floor): bounded gradient at 0, and 0 (no bias) for x = 0.
    cross = ((values.clamp_min(0) + floor).sqrt() - floor.sqrt()).sum(-1)
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)
    distance: torch.Tensor = (m - mean).pow(2).sum(-1) + trace + cov_trace - 2 * cross
    return distance


def sorted_values(features: torch.Tensor, n: int) -> torch.Tensor:
    """(1, C, H, W) -> (1, C, n): each channel's values sorted, resampled (linearly, as
    quantiles) to n values, so a style of any size remaps a canvas of n positions."""
    _, c, h, w = features.shape
    values = features.reshape(1, c, h * w).sort(-1).values
    at = torch.linspace(0, h * w - 1, n, device=features.device, dtype=values.dtype)
    lo = at.floor().long()
    hi = (lo + 1).clamp_max(h * w - 1)
    frac = at - lo
    return values[..., lo] * (1 - frac) + values[..., hi] * frac


def histogram_loss(features: torch.Tensor, target_sorted: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared distance of the features to their histogram-matched
    selves: each channel's k-th smallest value moved to the style's k-th (a constant)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
    with torch.no_grad():
        order = f.argsort(-1)
        matched = torch.empty_like(f).scatter_(-1, order, target_sorted.expand(b, c, h * w))
    return (f - matched).pow(2).mean(dim=(1, 2))


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
