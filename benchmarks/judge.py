"""The quality judge of benchmarks/quality.py: how far a result is from its content, from
its style, and how much high-frequency junk it carries, as three numbers.

All three are relative, so they read alike across pairs and sizes (0 = identical):

- content distance: ‖F(x) − F(c)‖² / ‖F(c)‖² at one middle ReLU (default relu3_3);
- style distance: the mean over five ReLUs (default relu1_2, relu2_2, relu3_3, relu4_3,
  relu5_3) of ‖G(x) − G(s)‖² / ‖G(s)‖², with G = F Fᵀ / (H·W) (per-position Gram, so
  content and style may differ in size);
- artifacts: the mean squared Laplacian of the luminance (3x3, interior pixels only) of
  the result over that of the style image at the same long edge: 1 = as busy as the
  painting, above = leftover noise or block edges, below = smoother.

F is the Caffe VGG16 (vgg16-caffe, the engine's offline backbone: BGR, 0..255, mean
subtracted) with max pooling. The default taps are held out from every objective the
benchmark runs: the engine taps conv1_1 .. conv5_1 (or relu1_1 .. relu5_1 with
layer_type relu) and neural-style-pt relu4_2 and relu1_1 .. relu5_1, so no recipe
optimizes the judge itself. ISSUE_TAPS (relu4_2; relu1_1 .. relu5_1), the taps the issue
suggested, are reported beside them: the peer optimizes exactly those.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nst_tui.engine.backbones import Backbone  # noqa: E402
from nst_tui.engine.prepare import get_backbone  # noqa: E402

BLOCK_SIZES = (2, 2, 3, 3, 3)  # VGG16's convs per block
RELUS = tuple(f"relu{b + 1}_{j + 1}" for b, n in enumerate(BLOCK_SIZES) for j in range(n))


@dataclass(frozen=True)
class Taps:
    content: str
    style: tuple[str, ...]


HELD_OUT_TAPS = Taps("relu3_3", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"))
ISSUE_TAPS = Taps("relu4_2", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))

# What the objectives of the benchmarked recipes tap (for the test that the judge differs).
ENGINE_TAPS = frozenset(f"{kind}{b}_1" for kind in ("conv", "relu") for b in range(1, 6))
PEER_TAPS = frozenset({"relu4_2", *ISSUE_TAPS.style})


class VGGTaps(nn.Module):
    """VGG16 up to the deepest ReLU asked for; returns {relu name: activation}."""

    def __init__(self, backbone: Backbone, names: set[str]) -> None:
        super().__init__()
        unknown = names - set(RELUS)
        if unknown:
            raise ValueError(f"unknown taps {sorted(unknown)}; known: {', '.join(RELUS)}")
        self.names = names
        self.preprocess = backbone.make_preprocess()
        deepest = max(RELUS.index(n) for n in names)
        self.convs = nn.ModuleList()
        convs = [wb for block in range(5) for wb in backbone.block_convs(block)]
        for w, b in convs[: deepest + 1]:
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            self.convs.append(conv)
        # Pool after the last conv of each block.
        self.pool_after = {sum(BLOCK_SIZES[: k + 1]) - 1 for k in range(5)}
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h))
            if RELUS[i] in self.names:
                out[RELUS[i]] = h
            if len(out) == len(self.names):
                break
            if i in self.pool_after:
                h = F.max_pool2d(h, 2, 2)
        return out


def gram(f: torch.Tensor) -> torch.Tensor:
    """Per-position Gram matrix of 1xCxHxW features: C x C, divided by H·W."""
    _, c, h, w = f.shape
    flat = f.reshape(c, h * w)
    return flat @ flat.T / (h * w)


def relative_error(x: torch.Tensor, target: torch.Tensor) -> float:
    return float((x - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12))


LUMA = (0.299, 0.587, 0.114)
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def high_frequency_energy(image: torch.Tensor) -> float:
    """Mean squared Laplacian of the luminance of a 1x3xHxW image in 0..1 (no padding:
    the border does not count)."""
    y = sum(c * image[:, i : i + 1] for i, c in enumerate(LUMA))
    lap = F.conv2d(y, LAPLACIAN.to(image)[None, None])
    return float(lap.pow(2).mean())


class Judge:
    """Scores images against one content and one style image (1x3xHxW, 0..1).

    The artifact reference is the style image at the content's long edge; results of
    another size are resized to the content's (bilinear, antialiased) before judging.
    """

    def __init__(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        taps: Taps = HELD_OUT_TAPS,
        also: dict[str, Taps] | None = None,
        backbone: Backbone | None = None,
    ) -> None:
        self.tapsets = {"": taps, **{f"_{k}": t for k, t in (also or {}).items()}}
        names = {n for t in self.tapsets.values() for n in (t.content, *t.style)}
        self.net = VGGTaps(backbone or get_backbone("vgg16-caffe"), names)
        self.size = content.shape[-2:]
        with torch.no_grad():
            cf, sf = self.net(content), self.net(style)
        self.content_targets = {t.content: cf[t.content] for t in self.tapsets.values()}
        self.style_targets = {n: gram(sf[n]) for t in self.tapsets.values() for n in t.style}
        long_edge = max(self.size)
        scale = long_edge / max(style.shape[-2:])
        style_at = (
            F.interpolate(
                style, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False
            )
            if scale != 1
            else style
        )
        self.style_energy = high_frequency_energy(style_at.clamp(0, 1))

    def __call__(self, image: torch.Tensor) -> dict[str, float]:
        """content, style and artifacts (held-out taps), plus content_NAME and style_NAME
        for each extra tap set."""
        if image.shape[-2:] != self.size:
            image = F.interpolate(
                image, size=tuple(self.size), mode="bilinear", antialias=True,
                align_corners=False,
            ).clamp(0, 1)  # fmt: skip
        with torch.no_grad():
            feats = self.net(image)
        scores: dict[str, float] = {}
        for suffix, taps in self.tapsets.items():
            scores["content" + suffix] = relative_error(
                feats[taps.content], self.content_targets[taps.content]
            )
            scores["style" + suffix] = sum(
                relative_error(gram(feats[n]), self.style_targets[n]) for n in taps.style
            ) / len(taps.style)
        scores["artifacts"] = high_frequency_energy(image) / max(self.style_energy, 1e-12)
        return scores
