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

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nst_tui.config import N_LAYERS, Config
from nst_tui.engine import accel as acc
from nst_tui.engine.backbones import Backbone
from nst_tui.engine.features import FeatureExtractor, layer_name
from nst_tui.engine.losses import content_loss, gram, style_loss, style_width_factor, tv_loss

# Columns of the loss matrix: the four sums, then every layer's content and style
# term; a cell reads the columns of its own layers, in its own order (term_names).
TOTAL, CONTENT, STYLE, TV = range(4)
CONTENT_AT = 4
STYLE_AT = 4 + N_LAYERS
N_COLUMNS = 4 + 2 * N_LAYERS


def uses_content(mode: str) -> bool:
    return mode in ("reconstruct", "content", "both")


def uses_style(mode: str) -> bool:
    return mode in ("reconstruct", "style", "both")


def active_taps(cfg: Config) -> set[int]:
    """The layers a run needs: only these (and the blocks before them) run."""
    taps: set[int] = set()
    if uses_content(cfg.mode):
        taps |= set(cfg.content_layers)
    if uses_style(cfg.mode):
        taps |= set(cfg.style_layers)
    return taps


def blend_weights(cfg: Config, n_styles: int) -> list[float]:
    """style_blend scaled to sum to 1 (equal weights when empty): the targets' Gram is
    the weighted mean of the styles' Grams."""
    raw = list(cfg.style_blend) or [1.0] * n_styles
    return [w / sum(raw) for w in raw[:n_styles]]


def style_weight(cfg: Config, layer: int, channels: int) -> float:
    """beta * the layer's weight (times its width factor when normalize_style_weights)."""
    w = cfg.beta * cfg.style_weights[layer]
    return w * style_width_factor(channels, cfg.normalize_style_weights)


def typed(features: torch.Tensor, layer_type: str) -> torch.Tensor:
    """A conv tap as the cell reads it: itself, or its ReLU."""
    return F.relu(features) if layer_type == "relu" else features


@dataclass
class CellTargets:
    """What one cell's losses compare against: constants, computed once per run."""

    cfg: Config
    content_layers: list[int]
    style_layers: list[int]
    use_tv: bool
    content_targets: dict[int, torch.Tensor]
    style_targets: dict[int, torch.Tensor]  # Gram matrices (1, C, C)
    colors: torch.Tensor | None = None  # the content, when frames keep its colours

    def term_names(self) -> list[str]:
        lt = self.cfg.layer_type
        names = ["total", "content", "style", "tv"]
        names += [f"content/{layer_name(i, lt)}" for i in self.content_layers]
        names += [f"style/{layer_name(i, lt)}" for i in self.style_layers]
        return names

    def finite(self) -> bool:
        """Whether every target is finite (NaN weights or images make them not)."""
        targets = [*self.content_targets.values(), *self.style_targets.values()]
        return all(bool(torch.isfinite(t).all()) for t in targets)

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
    """The network a batch shares: conv taps at the union of its cells' layers, in the
    layout and precision of the batch (batch_key: one of each per batch)."""
    taps = set().union(*(active_taps(cfg) for cfg in cfgs))
    extractor = FeatureExtractor(backbone, taps, "conv", cfgs[0].pooling).to(device)
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
) -> CellTargets:
    """Encode the content and the styles once: the targets of every iteration."""
    content_layers = list(cfg.content_layers) if uses_content(cfg.mode) else []
    style_layers = list(cfg.style_layers) if uses_style(cfg.mode) else []

    def feats(image: torch.Tensor) -> dict[int, torch.Tensor]:
        return {
            i: typed(f, cfg.layer_type) for i, f in acc.features(extractor, image, accel).items()
        }

    with torch.no_grad():
        cf = feats(content) if content_layers else {}
        styles = [style, *extra_styles] if style_layers else []
        sfs = [feats(s) for s in styles]
        weights = blend_weights(cfg, len(styles))
        style_targets = {
            i: sum(w * gram(sf[i]) for w, sf in zip(weights, sfs, strict=True)).detach()
            for i in style_layers
        }
    return CellTargets(
        cfg,
        content_layers,
        style_layers,
        cfg.mode == "reconstruct",
        {i: cf[i].detach() for i in content_layers},
        style_targets,  # type: ignore[arg-type]
        content.detach() if cfg.original_colors else None,
    )


class Objective(nn.Module):
    """Every cell's weighted loss terms as one (B, N_COLUMNS) matrix."""

    def __init__(
        self, extractor: FeatureExtractor, accel: acc.Accel, cells: Sequence[CellTargets]
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.accel = accel
        self.cells = list(cells)
        # Every cell taps at least one layer (the config checks it): a target says where.
        first = cells[0]
        device = next(iter({**first.content_targets, **first.style_targets}.values())).device
        relu = [c.cfg.layer_type == "relu" for c in cells]
        self.any_relu, self.all_relu = any(relu), all(relu)
        self.relu_mask = torch.tensor(relu, device=device).view(-1, 1, 1, 1)

        def vector(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)

        self.tv_w = vector([c.cfg.gamma if c.use_tv else 0.0 for c in cells])
        self.content_w: dict[int, torch.Tensor] = {}
        self.style_w: dict[int, torch.Tensor] = {}
        self.content_t: dict[int, torch.Tensor] = {}
        self.style_t: dict[int, torch.Tensor] = {}
        for i in range(N_LAYERS):
            c_users = [i in c.content_targets for c in cells]
            s_users = [i in c.style_targets for c in cells]
            if any(c_users):
                self.content_w[i] = vector(
                    [c.cfg.alpha if u else 0.0 for c, u in zip(cells, c_users, strict=True)]
                )
                self.content_t[i] = _stack([c.content_targets.get(i) for c in cells])
            if any(s_users):
                # Each weight in double, then float32.
                self.style_w[i] = vector(
                    [
                        style_weight(c.cfg, i, c.style_targets[i].shape[-1]) if u else 0.0
                        for c, u in zip(cells, s_users, strict=True)
                    ]
                )
                self.style_t[i] = _stack([c.style_targets.get(i) for c in cells])

    @property
    def style_layers(self) -> list[int]:
        """The layers whose Gram the batch computes (once, for every canvas)."""
        return sorted(self.style_t)

    def forward(self, canvas: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """(A, 3, H, W) canvases of the cells `index` (all when None) -> (A, N_COLUMNS)."""

        def pick(t: torch.Tensor) -> torch.Tensor:
            return t if index is None or t.shape[0] == 1 else t[index]

        feats = acc.features(self.extractor, canvas, self.accel)
        zero = canvas.new_zeros(canvas.shape[0])
        relu_mask = pick(self.relu_mask)
        content, style = [zero] * N_LAYERS, [zero] * N_LAYERS
        for i in sorted(set(self.content_t) | set(self.style_t)):
            x = self._typed(feats[i], relu_mask)
            if i in self.content_t:
                content[i] = pick(self.content_w[i]) * content_loss(x, pick(self.content_t[i]))
            if i in self.style_t:
                style[i] = pick(self.style_w[i]) * style_loss(x, pick(self.style_t[i]))
        content_sum = torch.stack(content).sum(0)
        style_sum = torch.stack(style).sum(0)
        tv = pick(self.tv_w) * tv_loss(canvas)
        total = content_sum + style_sum + tv
        return torch.stack([total, content_sum, style_sum, tv, *content, *style], dim=1)

    def _typed(self, x: torch.Tensor, relu_mask: torch.Tensor) -> torch.Tensor:
        if self.all_relu:
            return F.relu(x)
        if not self.any_relu:
            return x
        return torch.where(relu_mask, F.relu(x), x)


def _stack(targets: list[torch.Tensor | None]) -> torch.Tensor:
    """Per-cell targets as one tensor; a target all cells share stays (1, ...) and broadcasts.
    Cells that do not use the layer borrow another cell's target: their weight is 0."""
    used = [t for t in targets if t is not None]
    filled = [t if t is not None else used[0] for t in targets]
    if all(t is used[0] or torch.equal(t, used[0]) for t in filled):
        return used[0]
    return torch.cat(filled)
