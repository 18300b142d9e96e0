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
from torch.utils.checkpoint import checkpoint

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

    def forward(self, image: torch.Tensor, recompute: bool = False) -> dict[int, torch.Tensor]:
        """(B, 3, H, W) RGB in [0, 1] -> {tap index: feature map}.

        `recompute`: each block runs under torch.utils.checkpoint, which keeps only the
        block's input for the backward pass and runs the block again there: the same
        kernels on the same values, so the same gradient, for about one more forward pass
        per step and the activations of one block at a time (the memory plan's choice
        where a canvas does not fit as it is). A block ends with the pooling that starts
        the next, so what is kept between blocks is a pooled map, a quarter of the last."""
        x = self.preprocess(image)
        if x.dtype != self.dtype:
            x = x.to(self.dtype)
        out: dict[int, torch.Tensor] = {}
        for b in range(len(self.convs)):
            if recompute and torch.is_grad_enabled():
                tap, after = checkpoint(self._block, b, x, use_reentrant=False)
            else:
                tap, after = self._block(b, x)
            if tap is not None:
                out[b] = tap
            if after is None:
                break
            x = after
        return out

    def _block(self, b: int, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Block b's convs from its input, then the pooling into block b + 1: (its tap or
        None, the next block's input or None after the deepest tap)."""
        tap = None
        for j, conv in enumerate(self.convs[b]):
            x = conv(x) if self.packs is None else self.packs[b][j](x)
            tapped = j == 0 and b in self.taps
            if tapped and self.layer_type == "conv":
                tap = x
                if b == self.depth:
                    return tap, None  # the deepest tap's ReLU is never needed
            # In place where nothing else holds the conv's output (a conv tap does): the
            # conv saved its input, not its output, for the backward pass.
            x = F.relu(x, inplace=not (tapped and self.layer_type == "conv"))
            if tapped and self.layer_type == "relu":
                tap = x
        return tap, (None if b == self.depth else self.pool(x))
