"""Exact tiled gradients: the untiled objective's loss and canvas gradient, computed one
tile at a time, so a canvas of any size needs the memory of one tile's forward and
backward pass (docs/tiles.md).

The canvas is cut into tiles; each tile answers for its *interior* (the tiles' interiors
partition the canvas) and computes on a *window*: its interior plus margins. Two passes:

1. Each tile runs forward (no grad) on what its interior's own feature cells read (a
   narrower window than pass 2's); each tap's features are cropped to those cells and
   the global statistics are accumulated: the Gram sums, the mean and
   covariance (Chan's pairwise merge of per-tile centred sums, as stable as one pass),
   the content loss's squared differences. The loss terms follow from the statistics:
   the values the untiled objective gives, up to float rounding.
2. Each window runs again with grad. At every feature position q a tile's interior
   pixels feed, the gradient of the global loss with respect to the features, dL/dF_q,
   is a function of F_q and of the global statistics' gradients alone (Gram:
   (Ḡ + Ḡᵀ) F_q; w2: m̄/N + (S̄ + S̄ᵀ)(F_q - m)/N; content: 2 (F_q - T_q)/(C·N)), so
   the surrogate Σ_q <dL/dF_q (a constant), F_q> has exactly that gradient there; its
   backward pass (autograd.grad with those constants as the features' upstream) gives
   the gradient of the interior's pixels, which is kept.

Why it is exact: a feature position's value is the untiled one when its receptive field
lies inside the window (or meets the canvas's own border, padded alike in both) and the
window starts on the grid of the poolings it runs through. Pass 2's window holds every
feature position whose receptive field touches the interior, and all of their receptive
fields: margins of about twice the deepest tap's receptive-field radius (pass 1's: once),
computed per tap from the backbone's layer table (`receptive_fields`), on the pooling
grid.

TV is computed on the whole canvas by the objective, as untiled: it is a few
elementwise kernels on a 3-channel image. The histogram term needs each channel's ranks
over the whole canvas, which no tile sees: tiles refuse it (config.tiles_refused).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from nst_tui.config import N_LAYERS, Config, tiles_refused
from nst_tui.engine import accel as acc
from nst_tui.engine.backbones import BLOCKS
from nst_tui.engine.events import StatusFn, quiet
from nst_tui.engine.features import FeatureExtractor
from nst_tui.engine.losses import gram_distance, w2_distance


def effective_tile(cfg: Config, height: int, width: int, planned: int = 0) -> int:
    """The tile side a run of `cfg` uses on a height x width canvas; 0: untiled.

    The one place the choice is made: `cfg.tile` when set, else `planned` (what the memory
    plan chose for this canvas, 0: it fits untiled); and 0 wherever one tile would hold the
    whole canvas (a multi-scale run's small scales) or the config cannot be tiled
    (config.tiles_refused)."""
    tile = cfg.tile or planned
    if tile <= 0 or tiles_refused(cfg) or (height <= tile and width <= tile):
        return 0
    return tile


# ---- receptive fields ----------------------------------------------------------


@dataclass(frozen=True)
class TapField:
    """Where a tap's feature position q reads the canvas: pixels q*stride - lo through
    q*stride + hi (inclusive), on each axis (VGG's are square)."""

    stride: int
    lo: int
    hi: int


def layer_ops(block_sizes: Sequence[int], tap: int) -> list[str]:
    """The layers from the canvas to tap `tap` (block tap+1's first conv): 'conv'
    (3x3, stride 1, padding 1) and 'pool' (2x2, stride 2: max and avg alike)."""
    ops: list[str] = []
    for b in range(tap + 1):
        if b > 0:
            ops.append("pool")
        ops += ["conv"] * (block_sizes[b] if b < tap else 1)
    return ops


def receptive_fields(block_sizes: Sequence[int], taps: Sequence[int]) -> dict[int, TapField]:
    """Each tap's receptive field (a ReLU tap reads what its conv does), walking its
    layers back from the tap: a conv widens the interval by one position on each side, a
    pool maps positions [u, v] to [2u, 2v + 1]."""
    fields = {}
    for tap in taps:
        stride, lo, hi = 1, 0, 0
        for op in reversed(layer_ops(block_sizes, tap)):
            if op == "conv":
                lo, hi = lo + 1, hi + 1
            else:
                stride, lo, hi = 2 * stride, 2 * lo, 2 * hi + 1
        fields[tap] = TapField(stride, lo, hi)
    return fields


def backbone_fields(arch: str, taps: Sequence[int]) -> dict[int, TapField]:
    """receptive_fields of a VGG layout by name (vgg16, vgg19)."""
    return receptive_fields(BLOCKS[arch], taps)


def extractor_fields(extractor: FeatureExtractor) -> dict[int, TapField]:
    """receptive_fields of the network an extractor runs (its blocks' conv counts)."""
    return receptive_fields([len(convs) for convs in extractor.convs], extractor.taps)


# ---- the plan ------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One tile along one axis, in pixels: the interior it answers for, [start, stop), the
    window its gradient pass computes on, [lo, hi), and the narrower window its statistics
    pass does, [stat_lo, stat_hi): what the interior's own cells read (about one field
    radius of margin, where the gradient pass needs two)."""

    start: int
    stop: int
    lo: int
    hi: int
    stat_lo: int
    stat_hi: int


def feature_cells(span: Span, field: TapField, length: int) -> tuple[slice, slice]:
    """A tap's feature positions, global, along one axis: the interior's cells (the
    tiles' partition of the feature grid) and every cell whose receptive field touches
    the interior (the surrogate's)."""
    s = field.stride
    n = length // s  # a floor at each pooling is the floor of the whole quotient
    interior = slice(span.start // s, span.stop // s)
    first = max(0, -(-(span.start - field.hi) // s))
    last = min(n, (span.stop - 1 + field.lo) // s + 1)
    return interior, slice(first, last)


def axis_spans(length: int, tile: int, fields: dict[int, TapField]) -> tuple[Span, ...]:
    """Cut [0, length) into interiors of at most `tile` pixels (rounded down to the
    pooling grid, at least one grid cell), about equal, starting on the grid; then each
    window: every receptive field of every feature cell that reads the interior, its ends
    on the grid (or the canvas's)."""
    unit = max(f.stride for f in fields.values())  # the deepest tap's pooling grid
    step = max(unit, tile // unit * unit)
    n = -(-length // step)
    # Each cut on the grid, rounded up: every interior is at most `step` (the last one too).
    cuts = sorted({0, length, *(unit * -(-k * length // (n * unit)) for k in range(1, n))})
    spans = []
    for start, stop in itertools.pairwise(cuts):
        interior = Span(start, stop, start, stop, start, stop)
        own, reading = [], []  # per tap: the interior's own cells, every cell reading it
        for field in fields.values():
            cells, cells_reading = feature_cells(interior, field, length)
            own.append((field, cells))
            reading.append((field, cells_reading))
        lo, hi = _on_grid(*_window(start, stop, reading), unit, length)  # gradient pass
        stat_lo, stat_hi = _on_grid(*_window(start, stop, own), unit, length)  # statistics
        spans.append(Span(start, stop, lo, hi, stat_lo, stat_hi))
    return tuple(spans)


def _window(start: int, stop: int, cells: list[tuple[TapField, slice]]) -> tuple[int, int]:
    """The pixels [lo, hi) that the interior [start, stop) and these cells read."""
    lo, hi = start, stop
    for field, q in cells:
        if q.stop > q.start:
            lo = min(lo, q.start * field.stride - field.lo)
            hi = max(hi, (q.stop - 1) * field.stride + field.hi + 1)
    return lo, hi


def _on_grid(lo: int, hi: int, unit: int, length: int) -> tuple[int, int]:
    """[lo, hi) widened to the pooling grid (its end: or the canvas's), inside the canvas."""
    return max(0, lo) // unit * unit, min(length, -(-hi // unit) * unit)


@dataclass(frozen=True)
class TilePlan:
    """How a height x width canvas is cut: the tiles are every (row span, column span)."""

    height: int
    width: int
    tile: int
    fields: dict[int, TapField]
    rows: tuple[Span, ...]
    cols: tuple[Span, ...]

    @property
    def n_tiles(self) -> int:
        return len(self.rows) * len(self.cols)

    def tiles(self) -> Iterator[tuple[Span, Span]]:
        for r in self.rows:
            for c in self.cols:
                yield r, c

    @property
    def largest_window(self) -> tuple[int, int]:
        """(height, width) of the largest window: what one tile's pass needs memory for."""
        return (max(r.hi - r.lo for r in self.rows), max(c.hi - c.lo for c in self.cols))

    @property
    def margin(self) -> int:
        """The widest margin a window has beyond its interior, in pixels."""
        spans = [*self.rows, *self.cols]
        return max(max(s.start - s.lo, s.hi - s.stop) for s in spans)

    @property
    def computed_pixels(self) -> int:
        """Pixels of the gradient pass's windows together (the canvas's: height * width)."""
        return sum(r.hi - r.lo for r in self.rows) * sum(c.hi - c.lo for c in self.cols)

    @property
    def statistics_pixels(self) -> int:
        """Pixels of the statistics pass's windows together."""
        rows = sum(r.stat_hi - r.stat_lo for r in self.rows)
        return rows * sum(c.stat_hi - c.stat_lo for c in self.cols)

    def describe(self) -> str:
        pixels = self.height * self.width
        return (
            f"{len(self.rows)}×{len(self.cols)} tiles of up to {self.tile} px, margins up to "
            f"{self.margin} px ({self.statistics_pixels / pixels:.1f}× and "
            f"{self.computed_pixels / pixels:.1f}× the canvas's pixels in the two passes)"
        )


def plan_tiles(height: int, width: int, tile: int, fields: dict[int, TapField]) -> TilePlan:
    """Tiles of a height x width canvas for taps with these receptive fields."""
    return TilePlan(
        height,
        width,
        tile,
        fields,
        axis_spans(height, tile, fields),
        axis_spans(width, tile, fields),
    )


# ---- the two passes ---------------------------------------------------------------


class Term(Protocol):
    """One kind of loss at one layer for the batch (objective._Term, picked for the
    cells being stepped): each cell's weight and the stacked targets."""

    kind: str
    weights: torch.Tensor
    targets: tuple[torch.Tensor, ...]


Typed = Callable[[torch.Tensor], torch.Tensor]  # a conv tap as the cells read it (ReLU)


@dataclass
class _Stat:
    """One term's global statistic, accumulated over the tiles' interiors."""

    term: Term
    layer: int
    channels: int = 0
    positions: int = 0  # the layer's H*W, untiled
    total: torch.Tensor | None = None  # content: Σ (F - T)²; gram: Σ F Fᵀ
    count: int = 0  # w2: positions merged so far, their mean and centred Σ (F-m)(F-m)ᵀ
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None

    def add(self, f: torch.Tensor, rows: slice, cols: slice) -> None:
        """Fold in a tile's interior features `f` (A, C, h, w) at global cells rows, cols."""
        kind = self.term.kind
        if kind == "content":
            target = self.term.targets[0][:, :, rows, cols]
            part = (f - target).pow(2).sum(dim=(1, 2, 3))
            self.total = part if self.total is None else self.total + part
        elif kind == "gram":
            part = _outer_sum(f)
            self.total = part if self.total is None else self.total + part
        elif kind == "w2":
            n = f.shape[-2] * f.shape[-1]
            if n == 0:
                return
            flat = _flat(f)  # (A, C, n)
            mean = flat.mean(-1)
            centred = flat - mean[..., None]
            m2 = torch.bmm(centred, centred.transpose(1, 2))
            if self.mean is None or self.m2 is None:
                self.count, self.mean, self.m2 = n, mean, m2
            else:  # Chan et al.'s pairwise update: no E[FFᵀ] - mmᵀ cancellation
                total = self.count + n
                delta = mean - self.mean
                self.mean = self.mean + delta * (n / total)
                self.m2 = self.m2 + m2 + _outer(delta) * (self.count * n / total)
                self.count = total
        else:
            raise ValueError(f"tiles cannot compute a {kind} term")

    def statistic(self) -> tuple[torch.Tensor, ...]:
        """What the loss reads: content Σ (F-T)²; gram the Gram; w2 mean and covariance."""
        if self.term.kind == "w2":
            assert self.mean is not None and self.m2 is not None
            return self.mean, self.m2 / self.positions
        assert self.total is not None
        if self.term.kind == "gram":
            return (self.total / (self.channels * self.positions),)
        return (self.total,)

    def loss(self, *stat: torch.Tensor) -> torch.Tensor:
        """The weighted per-sample term (A,) from its statistic, as the untiled one."""
        kind, w = self.term.kind, self.term.weights
        if kind == "content":
            return w * (stat[0] / (self.channels * self.positions))
        if kind == "gram":
            return w * gram_distance(stat[0], self.term.targets[0])
        return w * w2_distance(stat[0], stat[1], *self.term.targets)

    def upstream(
        self, coef: torch.Tensor
    ) -> Callable[[torch.Tensor, slice, slice], torch.Tensor] | None:
        """dL/dF at a tile's feature positions, as a function of their features (A, C, h,
        w) and global cells, for L = Σ_a coef_a * this term (None where coef is all 0)."""
        if not bool((coef != 0).any()):
            return None
        kind = self.term.kind
        if kind == "content":
            scale = (2 * coef * self.term.weights / (self.channels * self.positions))[
                :, None, None, None
            ]

            def content(f: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
                return scale * (f - self.term.targets[0][:, :, rows, cols])

            return content
        leaves = [s.detach().requires_grad_(True) for s in self.statistic()]
        with torch.enable_grad():
            total = (coef * self.loss(*leaves)).sum()
            grads = torch.autograd.grad(total, leaves)
        if kind == "gram":
            (g_bar,) = grads
            g_bar = g_bar / (self.channels * self.positions)  # the Gram is Σ F Fᵀ / (C·N)
            sym = g_bar + g_bar.transpose(1, 2)

            def gram_grad(f: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
                return torch.einsum("acd,adhw->achw", sym, f)

            return gram_grad
        m_bar, s_bar = grads
        mean = leaves[0].detach()[:, :, None, None]
        first = (m_bar / self.positions)[:, :, None, None]
        sym = (s_bar + s_bar.transpose(1, 2)) / self.positions

        def w2_grad(f: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
            return first + torch.einsum("acd,adhw->achw", sym, f - mean)

        return w2_grad


def _flat(f: torch.Tensor) -> torch.Tensor:
    """(A, C, h, w) -> (A, C, h*w), copying a crop once."""
    return f.reshape(f.shape[0], f.shape[1], -1)


def _outer_sum(f: torch.Tensor) -> torch.Tensor:
    """Σ over positions of F Fᵀ: (A, C, h, w) -> (A, C, C)."""
    a, c, h, w = f.shape
    if f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous():
        flat = f.permute(0, 2, 3, 1).reshape(a, h * w, c)  # (A, hw, C), the cheap copy
        return torch.bmm(flat.transpose(1, 2), flat)
    flat = _flat(f)
    return torch.bmm(flat, flat.transpose(1, 2))


def _outer(v: torch.Tensor) -> torch.Tensor:
    return v[..., :, None] * v[..., None, :]


class Interrupted(Exception):
    """A cancel seen between two tiles: the pass ends where it stood, nothing applied."""


SLOW_S = 2.0  # a pass in tiles tells how far it is once it has run this long ...
EVERY_S = 1.0  # ... then at most this often: a fast pass says nothing


@dataclass(frozen=True)
class TileWatch:
    """What a pass in tiles answers to between two tiles. A pass takes minutes at 4096 px
    (the targets' pass, each step's two): a cancel is read before every tile, not only
    between steps (a CUDA graph never captures tiles, so the check always runs), and a
    slow pass reports its tiles as a Status ("<label>: ...", the fraction done)."""

    cancel: threading.Event | None = None
    status: StatusFn = quiet

    def tiles(self, plan: TilePlan, label: str) -> Iterator[tuple[Span, Span]]:
        """The plan's tiles in turn; raises Interrupted before a tile once cancelled."""
        n, start = plan.n_tiles, time.perf_counter()
        told = None  # when it last reported
        for k, (r, c) in enumerate(plan.tiles()):
            if self.cancel is not None and self.cancel.is_set():
                raise Interrupted
            now = time.perf_counter()
            if now - start >= SLOW_S and (told is None or now - told >= EVERY_S):
                self.status(f"{label}tile {k + 1} of {n}", k / n)
                told = now
            yield r, c
        if told is not None:  # a bar it drove ends full
            self.status(f"{label}{n} tiles done", 1.0)


UNWATCHED = TileWatch()  # no cancel, no one told: a pass outside a run (tests, probes)


class TiledTerms:
    """The loss terms of one batch, computed tile by tile: `__call__(canvas)` gives the
    (A, 2 * N_LAYERS) matrix [content term of each layer, style term of each layer] and
    its backward pass gives the canvas's exact gradient (torch.autograd.Function)."""

    def __init__(
        self,
        extractor: FeatureExtractor,
        accel: acc.Accel,
        plan: TilePlan,
        terms: dict[int, list[Any]],  # layer -> [Term], picked for the cells stepped
        typed: Typed,
        watch: TileWatch = UNWATCHED,
    ) -> None:
        self.extractor, self.accel, self.plan, self.typed = extractor, accel, plan, typed
        self.terms = terms
        self.watch = watch
        for layer_terms in terms.values():
            for term in layer_terms:
                if term.kind not in ("content", "gram", "w2"):
                    raise ValueError(f"tiles cannot compute a {term.kind} term")

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = _TiledFunction.apply(canvas, self)
        return out

    def windows(self, k: int) -> Iterator[tuple[Span, Span]]:
        """The tiles of pass k (1 or 2), watched."""
        return self.watch.tiles(self.plan, f"tiles: pass {k} of 2, ")

    def cells(self, layer: int, r: Span, c: Span) -> tuple[slice, slice, slice, slice]:
        """Global (interior rows, cols, surrogate rows, cols) of a layer in a tile."""
        field = self.plan.fields[layer]
        rows, rows_e = feature_cells(r, field, self.plan.height)
        cols, cols_e = feature_cells(c, field, self.plan.width)
        return rows, cols, rows_e, cols_e

    def local(
        self, layer: int, top: int, left: int, rows: slice, cols: slice
    ) -> tuple[slice, slice]:
        """Global cells as a window's whose corner is pixel (top, left) (on the grid)."""
        s = self.plan.fields[layer].stride
        dr, dc = top // s, left // s
        return slice(rows.start - dr, rows.stop - dr), slice(cols.start - dc, cols.stop - dc)

    def features(self, window: torch.Tensor) -> dict[int, torch.Tensor]:
        return {
            i: self.typed(f)
            for i, f in acc.features(self.extractor, window, self.accel).items()
            if i in self.terms
        }

    def first_pass(self, canvas: torch.Tensor) -> tuple[list[_Stat], torch.Tensor]:
        """Statistics over the interiors, and the (A, 2 * N_LAYERS) loss matrix."""
        h, w = canvas.shape[-2:]
        if (h, w) != (self.plan.height, self.plan.width):
            raise ValueError(f"a tile plan for {self.plan.height}x{self.plan.width}, got {h}x{w}")
        stats = [_Stat(t, i) for i, ts in self.terms.items() for t in ts]
        for r, c in self.windows(1):
            feats = self.features(canvas[:, :, r.stat_lo : r.stat_hi, c.stat_lo : c.stat_hi])
            for stat in stats:
                f = feats[stat.layer]
                rows, cols, _, _ = self.cells(stat.layer, r, c)
                lr, lc = self.local(stat.layer, r.stat_lo, c.stat_lo, rows, cols)
                field = self.plan.fields[stat.layer]
                stat.channels = f.shape[1]
                stat.positions = (h // field.stride) * (w // field.stride)
                stat.add(f[:, :, lr, lc], rows, cols)
            del feats  # before the next window's: one window's features at a time
        values = canvas.new_zeros(canvas.shape[0], 2 * N_LAYERS)
        for stat in stats:
            column = stat.layer + (0 if stat.term.kind == "content" else N_LAYERS)
            values[:, column] += stat.loss(*stat.statistic())
        return stats, values

    def second_pass(
        self, canvas: torch.Tensor, stats: list[_Stat], grad_out: torch.Tensor
    ) -> torch.Tensor:
        """The canvas's gradient of Σ grad_out * the loss matrix, tile by tile."""
        ups: dict[int, list[Callable[[torch.Tensor, slice, slice], torch.Tensor]]] = {}
        for stat in stats:
            column = stat.layer + (0 if stat.term.kind == "content" else N_LAYERS)
            up = stat.upstream(grad_out[:, column])
            if up is not None:
                ups.setdefault(stat.layer, []).append(up)
        grad = torch.zeros_like(canvas)
        if not ups:
            return grad
        for r, c in self.windows(2):
            window = canvas[:, :, r.lo : r.hi, c.lo : c.hi].detach().requires_grad_(True)
            outputs, upstream = [], []
            with torch.enable_grad():
                feats = self.features(window)
            for layer, fns in ups.items():
                _, _, rows_e, cols_e = self.cells(layer, r, c)
                lr, lc = self.local(layer, r.lo, c.lo, rows_e, cols_e)
                with torch.enable_grad():
                    f = feats[layer][:, :, lr, lc]
                with torch.no_grad():
                    g = fns[0](f, rows_e, cols_e)
                    for fn in fns[1:]:
                        g = g + fn(f, rows_e, cols_e)
                outputs.append(f)
                upstream.append(g)
            # The backward pass of Σ <g, f>: the surrogate whose gradient at f is g.
            (g_window,) = torch.autograd.grad(outputs, window, upstream)
            grad[:, :, r.start : r.stop, c.start : c.stop] = g_window[
                :, :, r.start - r.lo : r.stop - r.lo, c.start - c.lo : c.stop - c.lo
            ]
            del feats, f, g, outputs, upstream, g_window  # one window's at a time
        return grad


class _TiledFunction(torch.autograd.Function):
    """Pass 1 forward, pass 2 in backward: the optimizers' `.backward()` runs it."""

    @staticmethod
    def forward(ctx: Any, canvas: torch.Tensor, tiled: TiledTerms) -> torch.Tensor:
        stats, values = tiled.first_pass(canvas.detach())
        ctx.tiled, ctx.stats = tiled, stats
        ctx.save_for_backward(canvas)
        return values

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (canvas,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None
        grad = ctx.tiled.second_pass(canvas.detach(), ctx.stats, grad_out)
        ctx.stats = None  # the statistics go with the step
        return grad, None
