"""Several Adam runs as one batch: one forward and one backward for all their canvases.

The cells of a batch share the network (backbone, pooling, device) and the canvas
shape; anything else may differ: weights, layers, layer type, mode, init, seed, lr,
iterations, sav_freq, even the images, style_scale (Gram targets are C x C at any style
size), normalize_style_weights (per-cell weights) and original_colors (per-cell frames).
A cell's losses depend only on its own slice of the batch, so the gradient of the
summed totals is, slice by slice, each cell's own gradient; one Adam parameter group
per cell keeps each cell's state and lr its own. A batched cell therefore follows the
path it would follow alone, up to the float rounding of convolutions run over a larger
batch.

Losses are computed for the whole batch at once, with per-cell weight vectors
(zero where a cell does not use a layer or a term) rather than per-cell slices:
the number of loss kernels stays the same however many cells there are.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nst_tui.config import N_LAYERS, Config
from nst_tui.engine import accel as acc
from nst_tui.engine.backbones import Backbone
from nst_tui.engine.events import Finished
from nst_tui.engine.features import FeatureExtractor
from nst_tui.engine.graphs import StepRunner
from nst_tui.engine.losses import content_loss, style_loss, tv_loss
from nst_tui.engine.optimize import (
    Emit,
    Objective,
    _Loop,
    _Stop,
    active_taps,
    style_weight,
)

# Columns of the batched loss matrix: the four sums, then every layer's content and
# style term; a cell reads the columns of its own layers, in its own order.
TOTAL, CONTENT, STYLE, TV = range(4)
CONTENT_AT = 4
STYLE_AT = 4 + N_LAYERS
N_COLUMNS = 4 + 2 * N_LAYERS


def batch_key(cfg: Config) -> tuple[object, ...]:
    """Cells with equal keys can share a batch (same network, precision, canvas shape)."""
    return (
        cfg.backbone,
        cfg.device,
        cfg.pooling,
        cfg.size,
        cfg.content_image,
        cfg.precision,
        cfg.cuda_graphs,
    )


@dataclass
class BatchCell:
    """One cell as prepare() made it for a run of its own, less its network.

    Targets, layers and term names come from the cell's own Objective, so they are
    the single run's, bit for bit; its canvas is the single run's start.
    """

    cfg: Config
    names: list[str]  # Objective.term_names()
    content_layers: list[int]
    style_layers: list[int]
    use_tv: bool
    content_targets: dict[int, torch.Tensor]
    style_targets: dict[int, torch.Tensor]
    canvas: torch.Tensor
    emit: Emit
    colors: torch.Tensor | None = None  # the content, when frames keep its colours

    @classmethod
    def from_objective(cls, objective: Objective, canvas: torch.Tensor, emit: Emit) -> BatchCell:
        return cls(
            objective.cfg,
            objective.term_names(),
            list(objective.content_layers),
            list(objective.style_layers),
            objective.use_tv,
            dict(objective.content_targets),
            dict(objective.style_targets),
            canvas,
            emit,
            objective.colors,
        )


def shared_extractor(
    backbone: Backbone, cfgs: Sequence[Config], device: torch.device
) -> FeatureExtractor:
    """Conv taps at the union of the cells' layers; relu cells apply the ReLU themselves
    (relu{i}_1 is exactly relu(conv{i}_1)), so conv and relu cells share one network."""
    taps = set().union(*(active_taps(cfg) for cfg in cfgs))
    extractor = FeatureExtractor(backbone, taps, "conv", cfgs[0].pooling).to(device)
    return acc.prepare_extractor(extractor, acc.choose(cfgs[0], device))


def cell_columns(cell: BatchCell) -> list[int]:
    """The loss-matrix columns of a cell, in the order of its term names."""
    return (
        [TOTAL, CONTENT, STYLE, TV]
        + [CONTENT_AT + i for i in cell.content_layers]
        + [STYLE_AT + i for i in cell.style_layers]
    )


class BatchObjective:
    """Every cell's weighted loss terms for a batch of canvases, as one (B, N_COLUMNS) matrix.

    Mirrors optimize.Objective term by term (weights, targets, layer types); the
    sweep tests hold the two to the same results.
    """

    def __init__(self, extractor: FeatureExtractor, cells: Sequence[BatchCell]) -> None:
        self.extractor = extractor
        cfgs = [c.cfg for c in cells]
        device = cells[0].canvas.device
        self.accel = acc.choose(cfgs[0], device)  # batch_key: one precision per batch
        relu = [cfg.layer_type == "relu" for cfg in cfgs]
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
                    [cfg.alpha if u else 0.0 for cfg, u in zip(cfgs, c_users, strict=True)]
                )
                self.content_t[i] = _stack([c.content_targets.get(i) for c in cells])
            if any(s_users):
                # Objective's weight in double, then float32, as Objective multiplies it.
                self.style_w[i] = vector(
                    [
                        style_weight(c.cfg, i, c.style_targets[i].shape[-1]) if u else 0.0
                        for c, u in zip(cells, s_users, strict=True)
                    ]
                )
                self.style_t[i] = _stack([c.style_targets.get(i) for c in cells])

    def __call__(self, canvas: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
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


class _Names:
    """All optimize._Loop asks of an objective is its term names; the batch computes the rest."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def term_names(self) -> list[str]:
        return self.names


def optimize_batch(
    extractor: FeatureExtractor,
    cells: Sequence[BatchCell],
    cancel: threading.Event | None = None,
) -> list[Finished]:
    """Run every cell's Adam loop in lockstep; each cell emits its own Progress, Frame
    and Finished through its `emit`, exactly as optimize() would for it alone."""
    if any(c.cfg.optimizer != "adam" for c in cells):
        raise ValueError("only Adam cells can share a batch; L-BFGS's line steps are per run")
    return _Batch(extractor, cells, cancel or threading.Event()).run()


class _Batch:
    def __init__(
        self, extractor: FeatureExtractor, cells: Sequence[BatchCell], cancel: threading.Event
    ) -> None:
        self.cancel = cancel
        self.objective = BatchObjective(extractor, cells)
        self.loops = [
            _Loop(
                _Names(c.names),  # type: ignore[arg-type]
                c.canvas,
                c.cfg,
                c.emit,
                cancel,
                c.colors,
            )
            for c in cells
        ]
        device = cells[0].canvas.device
        # Each cell's columns as a device index: picking them never waits for the device.
        self.columns = [torch.tensor(cell_columns(c), device=device) for c in cells]
        graphs = self.objective.accel.cuda_graphs
        self.opt = torch.optim.Adam(
            [{"params": [loop.canvas], "lr": loop.cfg.lr} for loop in self.loops],
            capturable=graphs,
        )
        self.results: dict[int, Finished] = {}
        self.active = list(range(len(self.loops)))
        self.index: torch.Tensor | None = None  # the active cells, once some have ended
        # While every cell runs, the step is always the same: it may be a CUDA graph.
        self.full_step = StepRunner(lambda: [self.step(None)], device, graphs, self.loops[0].note)

    def step(self, index: torch.Tensor | None) -> torch.Tensor:
        """One Adam step of the active cells; the (A, N_COLUMNS) loss matrix before it."""
        self.opt.zero_grad(set_to_none=True)
        canvas = torch.cat([self.loops[k].canvas for k in self.active])
        terms = self.objective(canvas, index)
        terms[:, TOTAL].sum().backward()
        self.opt.step()  # cells that have ended have no grad: Adam leaves them be
        for k in self.active:
            loop = self.loops[k]
            with torch.no_grad():
                loop.canvas.clamp_(0, 1)
            loop.update_average()
        return terms

    def end(self, k: int) -> None:
        self.results[k] = self.loops[k].finish()

    def run(self) -> list[Finished]:
        try:
            while self.active:
                if self.cancel.is_set():
                    self.cancel_all()
                    break
                self.iterate()
        except torch.OutOfMemoryError:
            for k in [k for k in self.active if k not in self.results]:
                loop = self.loops[k]
                loop.status = "failed"
                loop.reason = (
                    f"out of device memory with {len(self.active)} canvases of size "
                    f"{loop.cfg.size} in one batch; try a smaller size or fewer cells"
                )
                self.end(k)
        return [self.results[k] for k in range(len(self.loops))]

    def iterate(self) -> None:
        if len(self.active) == len(self.loops):
            terms = self.full_step()[0]
        else:
            if self.index is None or len(self.index) != len(self.active):
                self.index = torch.tensor(self.active, device=self.objective.relu_mask.device)
            terms = self.step(self.index)
        still = []
        for row, k in enumerate(self.active):
            loop = self.loops[k]
            loop.done += 1
            try:
                if loop.logged(loop.done):
                    loop.queue_report(loop.done, terms[row].index_select(0, self.columns[k]))
                if loop.outbox:
                    loop.deliver(loop.outbox.ready())  # finish() drains the rest
            except _Stop:  # diverged: this cell ends, the others go on
                self.end(k)
                continue
            if loop.done >= loop.cfg.iterations:
                self.end(k)
            else:
                still.append(k)
        self.active = still

    def cancel_all(self) -> None:
        for k in self.active:
            loop = self.loops[k]
            with contextlib.suppress(_Stop):  # it marks the loop cancelled
                loop.check_cancel()
            self.end(k)
        self.active = []
