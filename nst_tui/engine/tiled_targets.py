"""The targets' pass in tiles: the content's features and the styles' statistics computed
window by window (engine/tiles.py's windows), so that encoding a 4096 px content or style
needs the memory of one window, not of the whole image's activations.

Exact as the tiled gradients are: a window holds the receptive field of every feature
position of its interior (or the image's own border, padded alike), and starts on the
pooling grid, so each interior position's features are the untiled ones up to float
rounding. The content's features at the content layers are assembled whole (the content
term compares against them at every position); a style's Gram matrix, or its mean and
covariance for w2, is accumulated over the interiors (the covariance by Chan et al.'s
pairwise merge, as tiles._Stat does for the canvas). The histogram term needs a style's
sorted values whole: tiles refuse it (config.tiles_refused).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from nst_tui.engine import accel as acc
from nst_tui.engine.features import FeatureExtractor
from nst_tui.engine.tiles import UNWATCHED, TileWatch, extractor_fields, feature_cells, plan_tiles

Typed = Callable[[torch.Tensor], torch.Tensor]  # a conv tap as the cell reads it (its ReLU)


@dataclass(frozen=True)
class Windows:
    """The targets' pass over an image in windows of `tile` px: what each window's interior
    holds, the features assembled whole, or a style statistic accumulated."""

    extractor: FeatureExtractor
    accel: acc.Accel
    tile: int
    typed: Typed
    watch: TileWatch = UNWATCHED  # a cancel read between windows, the pass's progress

    def interiors(
        self, image: torch.Tensor, layers: Sequence[int], what: str
    ) -> Iterator[tuple[int, torch.Tensor, slice, slice]]:
        """(layer, its features over a window's interior cells (1, C, h, w) in float32, the
        global rows and columns of those cells), window by window, for each of `layers`;
        `what` the image is names the pass to the watch (content, style)."""
        h, w = image.shape[-2:]
        fields = extractor_fields(self.extractor)
        plan = plan_tiles(h, w, self.tile, fields)
        for r, c in self.watch.tiles(plan, f"targets: {what}, "):
            feats = acc.features(self.extractor, image[:, :, r.lo : r.hi, c.lo : c.hi], self.accel)
            for layer in layers:
                field = fields[layer]
                rows, _ = feature_cells(r, field, h)
                cols, _ = feature_cells(c, field, w)
                s = field.stride
                local = feats[layer][
                    :,
                    :,
                    rows.start - r.lo // s : rows.stop - r.lo // s,
                    cols.start - c.lo // s : cols.stop - c.lo // s,
                ]
                yield layer, self.typed(local).float(), rows, cols
            del feats

    def layer_size(self, height: int, width: int, layer: int) -> tuple[int, int]:
        """A layer's (h, w) on a height x width image: a floor at each pooling."""
        stride = extractor_fields(self.extractor)[layer].stride
        return height // stride, width // stride

    def features(self, image: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """The image's features at `layers`, whole (1, C, h, w), assembled from the windows'
        interiors: what acc.features gives there, up to float rounding."""
        h, w = image.shape[-2:]
        out: dict[int, torch.Tensor] = {}
        for layer, f, rows, cols in self.interiors(image, layers, "content"):
            if layer not in out:
                lh, lw = self.layer_size(h, w, layer)
                out[layer] = f.new_empty(1, f.shape[1], lh, lw)
            out[layer][:, :, rows, cols] = f
        return out

    def statistics(
        self, image: torch.Tensor, layers: Sequence[int], kind: str
    ) -> dict[int, tuple[torch.Tensor, ...]]:
        """Each layer's style statistic over the whole image, accumulated window by window:
        gram: (the Gram, Σ F Fᵀ / (C·N),); w2: (mean (1, C), E[F Fᵀ] (1, C, C)), the second
        moment as the untiled blend reads it (covariance + mean meanᵀ)."""
        h, w = image.shape[-2:]
        sums: dict[int, torch.Tensor] = {}
        count: dict[int, int] = {}
        mean: dict[int, torch.Tensor] = {}
        m2: dict[int, torch.Tensor] = {}
        channels: dict[int, int] = {}
        for layer, f, _, _ in self.interiors(image, layers, "style"):
            n = f.shape[-2] * f.shape[-1]
            channels[layer] = f.shape[1]
            if n == 0:
                continue
            flat = f.reshape(1, f.shape[1], n)
            if kind == "gram":
                part = torch.bmm(flat, flat.transpose(1, 2))
                sums[layer] = part if layer not in sums else sums[layer] + part
                continue
            m = flat.mean(-1)
            centred = flat - m[..., None]
            part = torch.bmm(centred, centred.transpose(1, 2))
            if layer not in mean:
                count[layer], mean[layer], m2[layer] = n, m, part
            else:  # Chan et al.'s pairwise update: no E[FFᵀ] - mmᵀ cancellation
                total = count[layer] + n
                delta = m - mean[layer]
                mean[layer] = mean[layer] + delta * (n / total)
                outer = delta[..., :, None] * delta[..., None, :]
                m2[layer] = m2[layer] + part + outer * (count[layer] * n / total)
                count[layer] = total
        out: dict[int, tuple[torch.Tensor, ...]] = {}
        for layer in layers:
            lh, lw = self.layer_size(h, w, layer)
            positions = lh * lw
            if kind == "gram":
                out[layer] = (sums[layer] / (channels[layer] * positions),)
            else:
                mu = mean[layer]
                cov = m2[layer] / positions
                out[layer] = (mu, cov + mu[..., :, None] * mu[..., None, :])
        return out
