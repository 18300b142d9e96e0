"""A frozen VGG that runs only as deep as the deepest tap it was asked for.

Tap index i is block i+1's first conv (conv{i+1}_1), or its ReLU
(relu{i+1}_1) when `layer_type` is relu. The ReLU is never in place on a
tap: the study's code captured conv outputs that an in-place ReLU then
overwrote, so its conv and relu taps were the same tensor; ours differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nst_tui.engine.backbones import Backbone
from nst_tui.engine.packed import ConvPacks


def layer_name(index: int, layer_type: str) -> str:
    return f"{layer_type}{index + 1}_1"


class FeatureExtractor(nn.Module):
    def __init__(
        self, backbone: Backbone, taps: set[int] | list[int], layer_type: str, pooling: str
    ) -> None:
        super().__init__()
        if not taps:
            raise ValueError("a feature extractor needs at least one tap")
        self.taps = sorted(set(taps))
        self.layer_type = layer_type
        self.depth = max(self.taps)  # deepest block whose first conv must run
        self.preprocess = backbone.make_preprocess()
        self.pool = nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2)
        # blocks[b] holds the convs of block b that must run: all of them for the
        # blocks before the deepest tap, only the first one for the deepest.
        blocks: list[list[nn.Conv2d]] = []
        for b in range(self.depth + 1):
            pairs = backbone.block_convs(b)
            if b == self.depth:
                pairs = pairs[:1]
            convs = []
            for w, bias in pairs:
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                assert conv.bias is not None  # Conv2d's default: bias=True
                conv.bias.data.copy_(bias)
                convs.append(conv)
            blocks.append(convs)
        self.blocks = nn.ModuleList(nn.ModuleList(convs) for convs in blocks)  # registered
        self.convs = blocks  # the same convs, as their type: blocks[b][j] is convs[b][j]
        self.dtype = torch.float32  # what the convs compute in (cast)
        self.packs: list[list[ConvPacks]] | None = None  # pack: the convs, packed
        self.eval()
        self.requires_grad_(False)

    def cast(self, dtype: torch.dtype) -> None:
        """Run the convs in `dtype`: their weights cast once, here (packed ones repacked)."""
        for convs in self.convs:
            for conv in convs:
                conv.to(dtype)
        self.dtype = dtype
        if self.packs is not None:
            self.pack()

    def pack(self) -> None:
        """Call each conv with its weights packed for oneDNN (engine/packed.py): callers
        check packed.available() first."""
        self.packs = [[ConvPacks(conv) for conv in convs] for convs in self.convs]

    @property
    def n_convs(self) -> int:
        return sum(len(b) for b in self.convs)

    def forward(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> {tap index: feature map}."""
        x = self.preprocess(image)
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        out: dict[int, torch.Tensor] = {}
        for b, convs in enumerate(self.convs):
            if b > 0:
                x = self.pool(x)
            for j, conv in enumerate(convs):
                x = conv(x) if self.packs is None else self.packs[b][j](x)
                tapped = j == 0 and b in self.taps
                if tapped and self.layer_type == "conv":
                    out[b] = x
                    if b == self.depth:
                        return out  # the deepest tap's ReLU is never needed
                # In place where nothing else holds the conv's output (a conv tap does): the
                # conv saved its input, not its output, for the backward pass.
                x = F.relu(x, inplace=not (tapped and self.layer_type == "conv"))
                if tapped and self.layer_type == "relu":
                    out[b] = x
        return out
