"""The one objective: every cell's weighted loss terms for a batch of canvases.

A single run is a batch of one. Each cell brings its own targets and weights
(`CellTargets`, made once per run); the batch shares the network (backbone,
pooling, device, precision) and the canvas shape. A cell's losses depend only on
its own slice of the batch, so the gradient of the summed totals is, slice by
slice, each cell's own gradient: a batched cell follows the path it would follow
alone, up to the float rounding of convolutions run over a larger batch.

Losses are computed for the whole batch at once, with per-cell weight vectors
(zero where a cell does not use a layer or a term) rather than per-cell slices:
the number of loss kernels stays the same however many cells there are. The
network is tapped at conv outputs; a cell with relu taps applies the ReLU itself
(relu{i}_1 is exactly relu(conv{i}_1)), so conv and relu cells share one network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nst_tui.config import N_LAYERS, Config, active_taps, uses_content, uses_style, uses_tv
from nst_tui.engine import accel as acc
from nst_tui.engine import tiled_targets as tiled
from nst_tui.engine.backbones import Backbone
from nst_tui.engine.features import FeatureExtractor, layer_name
from nst_tui.engine.losses import (
    W2Target,
    content_loss,
    gram,
    histogram_loss,
    moments,
    sorted_values,
    style_loss,
    style_width_factor,
    tv_loss,
    w2_loss,
)
from nst_tui.engine.tiles import (
    UNWATCHED,
    TiledTerms,
    TilePlan,
    TileWatch,
    extractor_fields,
    plan_tiles,
)

# Columns of the loss matrix: the four sums, then every layer's content and style
# term; a cell reads the columns of its own layers, in its own order (term_names).
TOTAL, CONTENT, STYLE, TV = range(4)
CONTENT_AT = 4
STYLE_AT = 4 + N_LAYERS
N_COLUMNS = 4 + 2 * N_LAYERS


# normalize_losses divides TV by the content image's own TV. A flat content has none, and
# the quotient outweighed every other term by millions (a blank canvas). The floor is below
# every photo measured (the shipped and study images at 32 to 512 px: l1 0.019-0.11, l2
# 0.0009-0.023), so a photo's term is untouched; a flatter content's TV counts as a photo's
# smoothest would, which keeps TV beside content and style (a grey 32 px content: TV 29,
# content 387, style 222 after 60 steps, where 1e-12 gave TV 9e9).
TV_NORM_FLOOR = {"l1": 1e-2, "l2": 2e-4}


def blend_weights(cfg: Config, n_styles: int) -> list[float]:
    """style_blend scaled to sum to 1 (equal weights when empty): the targets' Gram is
    the weighted mean of the styles' Grams."""
    raw = list(cfg.style_blend) or [1.0] * n_styles
    return [w / sum(raw) for w in raw[:n_styles]]


def style_weight(cfg: Config, layer: int, channels: int) -> float:
    """beta * the layer's weight (times its width factor when normalize_style_weights)."""
    w = cfg.beta * cfg.style_weights[layer]
    return w * style_width_factor(channels, cfg.normalize_style_weights)


def typed(features: torch.Tensor, layer_type: str, inplace: bool = False) -> torch.Tensor:
    """A conv tap as the cell reads it: itself, or its ReLU (`inplace`: over the tap)."""
    return F.relu(features, inplace=inplace) if layer_type == "relu" else features


@dataclass
class CellTargets:
    """What one cell's losses compare against: constants, computed once per run."""

    cfg: Config
    content_layers: list[int]
    style_layers: list[int]
    use_tv: bool
    content_targets: dict[int, torch.Tensor]
    style_targets: dict[int, torch.Tensor]  # Gram matrices (1, C, C), style_stats gram
    colors: torch.Tensor | None = None  # the content, when frames keep its colours
    w2_targets: dict[int, W2Target] = field(default_factory=dict)  # style_stats w2
    hist_targets: dict[int, torch.Tensor] = field(default_factory=dict)  # (1, C, N), histogram
    # What each term is divided by: its target's energy with normalize_losses, else 1.
    content_norm: dict[int, float] = field(default_factory=dict)
    style_norm: dict[int, float] = field(default_factory=dict)
    hist_norm: dict[int, float] = field(default_factory=dict)
    tv_norm: float = 1.0

    def term_names(self) -> list[str]:
        lt = self.cfg.layer_type
        names = ["total", "content", "style", "tv"]
        names += [f"content/{layer_name(i, lt)}" for i in self.content_layers]
        names += [f"style/{layer_name(i, lt)}" for i in self.style_layers]
        return names

    def finite(self) -> bool:
        """Whether every target is finite (NaN weights or images make them not)."""
        targets = [
            *self.content_targets.values(),
            *self.style_targets.values(),
            *self.hist_targets.values(),
            *(t.cov_sqrt for t in self.w2_targets.values()),
        ]
        norms = [*self.content_norm.values(), *self.style_norm.values(), self.tv_norm]
        return all(bool(torch.isfinite(t).all()) for t in targets) and all(
            math.isfinite(n) for n in norms
        )

    def columns(self) -> list[int]:
        """This cell's loss-matrix columns, in the order of term_names()."""
        return (
            [TOTAL, CONTENT, STYLE, TV]
            + [CONTENT_AT + i for i in self.content_layers]
            + [STYLE_AT + i for i in self.style_layers]
        )


def conv_extractor(
    backbone: Backbone, cfgs: Sequence[Config], device: torch.device
) -> tuple[FeatureExtractor, acc.Accel]:
    """The network a batch shares: taps at the union of its cells' layers, in the layout
    and precision of the batch (batch_key: one of each per batch). Conv taps, each relu
    cell applying its own ReLU; ReLU taps when every cell taps ReLUs (the network's own
    ReLU is then the tap: none computed twice)."""
    taps = set().union(*(active_taps(cfg) for cfg in cfgs))
    layer_type = "relu" if all(cfg.layer_type == "relu" for cfg in cfgs) else "conv"
    extractor = FeatureExtractor(backbone, taps, layer_type, cfgs[0].pooling).to(device)
    accel = acc.choose(cfgs[0], device)
    acc.prepare_extractor(extractor, accel)
    return extractor, accel


def cell_targets(
    extractor: FeatureExtractor,
    accel: acc.Accel,
    cfg: Config,
    content: torch.Tensor,
    style: torch.Tensor,
    extra_styles: Sequence[torch.Tensor] = (),
    tile: int = 0,
    watch: TileWatch = UNWATCHED,
) -> CellTargets:
    """Encode the content and the styles once: the targets of every iteration. `tile` > 0:
    window by window (engine/tiled_targets.py), as a tiled run's memory plan needs, answering
    to `watch` between two windows (a cancel raises tiles.Interrupted)."""
    content_layers = list(cfg.content_layers) if uses_content(cfg.mode) else []
    style_layers = list(cfg.style_layers) if uses_style(cfg.mode) else []

    def feats(image: torch.Tensor) -> dict[int, torch.Tensor]:
        # The ReLU in place: the taps are this pass's own (no grad), and a copy of each
        # would hold every tap twice at the pass's peak (measured: +11% at 768 px).
        return {
            i: typed(f, cfg.layer_type, inplace=True).float()
            for i, f in acc.features(extractor, image, accel).items()
        }

    def norm(energy: float) -> float:
        # normalize_losses: every term relative to its target's energy, so that one set of
        # weights reads alike whatever the network's feature scale (Caffe's 0..255 inputs
        # or torchvision's normalised ones).
        return max(energy, 1e-12) if cfg.normalize_losses else 1.0

    def typed_f(f: torch.Tensor) -> torch.Tensor:
        return typed(f, cfg.layer_type)

    def stats(sf: dict[int, torch.Tensor]) -> dict[int, tuple[torch.Tensor, ...]]:
        """A style's statistic at each style layer (tiled_targets.Windows.statistics' form)."""
        out: dict[int, tuple[torch.Tensor, ...]] = {}
        for i in style_layers:
            if cfg.style_stats == "w2":
                mean, cov = moments(sf[i])
                out[i] = (mean, cov + _outer(mean))
            else:
                out[i] = (gram(sf[i]),)
        return out

    with torch.no_grad():
        styles = [style, *extra_styles] if style_layers else []
        if tile:
            windows = tiled.Windows(extractor, accel, tile, typed_f, watch)
            cf = windows.features(content, content_layers)
            sfs: list[dict[int, torch.Tensor]] = []
            sstats = [windows.statistics(s, style_layers, cfg.style_stats) for s in styles]
        else:
            cf = feats(content) if content_layers else {}
            sfs = [feats(s) for s in styles]
            sstats = [stats(sf) for sf in sfs]
        weights = blend_weights(cfg, len(styles))

        def blended(stat: Callable[[torch.Tensor], torch.Tensor], i: int) -> torch.Tensor:
            total, *rest = [w * stat(sf[i]) for w, sf in zip(weights, sfs, strict=True)]
            for part in rest:  # as sum() would, without its int 0 to start from
                total = total + part
            return total.detach()

        def mixed(i: int, k: int) -> torch.Tensor:
            """The styles' blend of statistic k at layer i, as blended() mixes features."""
            total, *rest = [w * st[i][k] for w, st in zip(weights, sstats, strict=True)]
            for part in rest:
                total = total + part
            return total.detach()

        targets = CellTargets(
            cfg,
            content_layers,
            style_layers,
            uses_tv(cfg.mode),
            {i: cf[i].detach() for i in content_layers},
            {},
            content.detach() if cfg.original_colors else None,
        )
        targets.content_norm = {i: norm(float(cf[i].pow(2).mean())) for i in content_layers}
        # Canvas positions at each layer (the content's shape): what histograms resample to.
        positions = _layer_positions(extractor, accel, content) if cfg.histogram else {}
        for i in style_layers:
            if cfg.style_stats == "w2":
                # The styles' blend as one Gaussian: the weighted mix of their moments.
                mean = mixed(i, 0)
                second = mixed(i, 1)
                target = W2Target.of_moments(mean, second - _outer(mean))
                targets.w2_targets[i] = target
                targets.style_norm[i] = norm(target.energy())
            else:
                targets.style_targets[i] = mixed(i, 0)
                targets.style_norm[i] = norm(float(targets.style_targets[i].pow(2).mean()))
            if cfg.histogram:
                # Sorted values blend as quantiles do: 1-D displacement interpolation.
                hist = blended(lambda f: sorted_values(f, positions[i]), i)  # noqa: B023
                targets.hist_targets[i] = hist
                targets.hist_norm[i] = norm(float(hist.pow(2).mean()))
        if targets.use_tv and cfg.normalize_losses:
            content_tv = float(tv_loss(content, cfg.tv == "l2")[0])
            targets.tv_norm = max(content_tv, TV_NORM_FLOOR[cfg.tv])
    return targets


def _outer(mean: torch.Tensor) -> torch.Tensor:
    return mean[..., :, None] * mean[..., None, :]


def _layer_positions(
    extractor: FeatureExtractor, accel: acc.Accel, image: torch.Tensor
) -> dict[int, int]:
    """H*W of each tapped layer for an image of this shape."""
    return {i: f.shape[-2] * f.shape[-1] for i, f in acc.features(extractor, image, accel).items()}


# Loss functions by kind: (features of the canvases, *stacked targets) -> (A,).
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "content": content_loss,
    "gram": style_loss,
    "w2": w2_loss,
    "histogram": histogram_loss,
}


@dataclass
class _Term:
    """One kind of loss at one layer, for the whole batch: each cell's weight (0 where
    a cell does not use it) and the cells' targets, stacked."""

    kind: str
    weights: torch.Tensor  # (B,)
    targets: tuple[torch.Tensor, ...]


class Objective(nn.Module):
    """Every cell's weighted loss terms as one (B, N_COLUMNS) matrix."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        accel: acc.Accel,
        cells: Sequence[CellTargets],
        tile: int = 0,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        # tile > 0: exact tiled gradients (engine/tiles.py), a Python loop over tiles in
        # each step; recompute: each block run again in the backward pass (the memory
        # plan's first resort, FeatureExtractor.forward). A CUDA graph captures neither.
        self.tile = tile
        self.recompute = recompute and not tile
        self.accel = dataclasses.replace(accel, cuda_graphs=False) if tile or recompute else accel
        self.tile_plans: dict[tuple[int, int], TilePlan] = {}
        # optimize() sets it for the run's length: the cancel and the progress of tiled steps.
        self.watch = UNWATCHED
        self.cells = list(cells)
        device = _device(cells[0])
        relu = [c.cfg.layer_type == "relu" for c in cells]
        self.any_relu, self.all_relu = any(relu), all(relu)
        self.relu_mask = torch.tensor(relu, device=device).view(-1, 1, 1, 1)

        def vector(values: list[float]) -> torch.Tensor:
            # Each weight in double, then float32.
            return torch.tensor(values, dtype=torch.float32, device=device)

        def tv_weights(norm: str) -> torch.Tensor | None:
            w = [c.cfg.gamma / c.tv_norm if c.use_tv and c.cfg.tv == norm else 0.0 for c in cells]
            return vector(w) if any(w) else None

        self.tv_l1, self.tv_l2 = tv_weights("l1"), tv_weights("l2")
        self.terms: dict[int, list[_Term]] = {}
        for i in range(N_LAYERS):
            terms = []
            # Per kind, per cell: (weight, targets) or None where the cell has no such term.
            kinds: dict[str, list[tuple[float, tuple[torch.Tensor, ...]] | None]] = {
                "content": [
                    (c.cfg.alpha / c.content_norm[i], (c.content_targets[i],))
                    if i in c.content_targets
                    else None
                    for c in cells
                ],
                "gram": [
                    (style_weight(c.cfg, i, t.shape[-1]) / c.style_norm[i], (t,))
                    if (t := c.style_targets.get(i)) is not None
                    else None
                    for c in cells
                ],
                "w2": [
                    (
                        style_weight(c.cfg, i, w2.mean.shape[-1]) / c.style_norm[i],
                        (w2.mean, w2.cov_sqrt, w2.cov_trace),
                    )
                    if (w2 := c.w2_targets.get(i)) is not None
                    else None
                    for c in cells
                ],
                "histogram": [
                    (c.cfg.histogram / c.hist_norm[i], (h,))
                    if (h := c.hist_targets.get(i)) is not None
                    else None
                    for c in cells
                ],
            }
            for kind, uses in kinds.items():
                used = [u for u in uses if u is not None]
                if not used:
                    continue
                weights = vector([u[0] if u is not None else 0.0 for u in uses])
                parts = zip(*[(u or used[0])[1] for u in uses], strict=True)
                terms.append(_Term(kind, weights, tuple(_stack(list(p)) for p in parts)))
            if terms:
                self.terms[i] = terms

    def term_weights(self, kind: str, layer: int) -> torch.Tensor | None:
        """Each cell's weight of a kind of term (content, gram, w2, histogram) at a layer."""
        return next((t.weights for t in self.terms.get(layer, []) if t.kind == kind), None)

    @property
    def style_layers(self) -> list[int]:
        """The layers whose style statistics the batch computes (for every canvas)."""
        return sorted(i for i, ts in self.terms.items() if any(t.kind != "content" for t in ts))

    def forward(self, canvas: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(A, 3, H, W) canvases of the cells `index` (all when None) -> (A, N_COLUMNS)."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if index is None or t.shape[0] == 1 else t[index]

        zero = canvas.new_zeros(canvas.shape[0])
        relu_mask = pick(self.relu_mask)
        content, style = [zero] * N_LAYERS, [zero] * N_LAYERS
        if self.tile:  # the same terms, tile by tile (TV below is the canvas's, as untiled)
            content, style = self._tiled_terms(canvas, pick, relu_mask)
        else:
            feats = acc.features(self.extractor, canvas, self.accel, self.recompute)
            for i, terms in self.terms.items():
                x = self._typed(feats[i], relu_mask)
                for term in terms:
                    value = pick(term.weights) * LOSSES[term.kind](x, *map(pick, term.targets))
                    if term.kind == "content":
                        content[i] = content[i] + value
                    else:
                        style[i] = style[i] + value
        content_sum = torch.stack(content).sum(0)
        style_sum = torch.stack(style).sum(0)
        tv = zero
        if self.tv_l1 is not None:
            tv = tv + pick(self.tv_l1) * tv_loss(canvas)
        if self.tv_l2 is not None:
            tv = tv + pick(self.tv_l2) * tv_loss(canvas, squared=True)
        total = content_sum + style_sum + tv
        return torch.stack([total, content_sum, style_sum, tv, *content, *style], dim=1)

    def _tiled_terms(
        self,
        canvas: torch.Tensor,
        pick: Callable[[torch.Tensor], torch.Tensor],
        relu_mask: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each layer's content and style terms (A,), from engine/tiles.py's two passes."""
        picked = {
            i: [_Term(t.kind, pick(t.weights), tuple(map(pick, t.targets))) for t in ts]
            for i, ts in self.terms.items()
        }
        typed = functools.partial(self._typed, relu_mask=relu_mask)
        tiled = TiledTerms(self.extractor, self.accel, self.plan(canvas), picked, typed, self.watch)
        columns = tiled(canvas).unbind(1)
        return list(columns[:N_LAYERS]), list(columns[N_LAYERS:])

    def plan(self, canvas: torch.Tensor) -> TilePlan:
        """The tiles of a canvas of this shape (tile > 0)."""
        h, w = canvas.shape[-2:]
        if (h, w) not in self.tile_plans:
            self.tile_plans[h, w] = plan_tiles(h, w, self.tile, extractor_fields(self.extractor))
        return self.tile_plans[h, w]

    def _typed(self, x: torch.Tensor, relu_mask: torch.Tensor) -> torch.Tensor:
        if getattr(self.extractor, "layer_type", "conv") == "relu":
            return x  # the network's taps are ReLUs already (conv_extractor)
        if self.all_relu:
            return F.relu(x)
        if not self.any_relu:
            return x
        return torch.where(relu_mask, F.relu(x), x)


def _device(cell: CellTargets) -> torch.device:
    """Where a cell's targets live (every cell taps at least one layer: the config checks)."""
    targets = [
        *cell.content_targets.values(),
        *cell.style_targets.values(),
        *(t.mean for t in cell.w2_targets.values()),
    ]
    return targets[0].device


def _stack(targets: list[torch.Tensor | None]) -> torch.Tensor:
    """Per-cell targets as one tensor; a target all cells share stays (1, ...) and broadcasts.
    Cells that do not use the layer borrow another cell's target: their weight is 0."""
    used = [t for t in targets if t is not None]
    filled = [t if t is not None else used[0] for t in targets]
    if all(t is used[0] or torch.equal(t, used[0]) for t in filled):
        return used[0]
    return torch.cat(filled)
