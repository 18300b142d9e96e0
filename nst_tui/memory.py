"""The memory plan: a run's peak memory, predicted from its config before anything heavy
runs, and how it fits a budget (as it is, or in exact tiles: engine/tiles.py).

Nothing here imports torch: shapes are arithmetic. The prediction walks the backbone's
layer table (VGG16/19 blocks and widths) at the canvas's size and takes the largest of a
run's three phases (Estimate.phases):

- loading the weights: the process, and the weights file read whole;
- the targets' pass (no grad): each image's taps kept in float32 (the content's while
  each style is encoded), beside the pass encoding the largest image;
- the step: the process (Python, torch and its libraries: on a CPU the budget is the
  whole process's resident memory; on a GPU only the tensors count), the weights (the
  cached backbone, the network's copy, and on a CPU the packed convolutions' reordered
  copies), per cell the canvas, its gradient, the start, the EMA, the optimizer's state
  (Adam's two moments and its update's temporary; L-BFGS's `history` pairs of
  canvas-sized vectors and its working vectors), the content targets, and the pass:
  what autograd saves (each ReLU's result, max pooling's int64 indices, the taps in
  float32, the losses' differences, TV's; cuDNN's convolutions their inputs too), the
  taps' gradients waiting for the backward pass, and in bf16 the largest tap's float32
  gradients being cast.

In tiles the canvas-sized state stays and one window (a tile plus its margins) takes
the activations' place, in the targets' pass too (engine/tiled_targets.py). The few
constants (BF16_MAPS, NOGRAD_MAPS, the overheads) are fitted to measured peaks
(`benchmarks/memory.py --calibrate`) and the model checked against other runs
(benchmarks/README.md, "Memory plan"): the peak RSS of a fresh process on a CPU. The plan
fills HEADROOM of a budget, the rest is room for its error.

Device probing (what is free) is apart: nst_tui.probe (torch-free: /proc/meminfo, this
process's resident memory) and nst_tui.engine.device_memory (CUDA, with torch).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from nst_tui.config import MIN_TILE, Config, active_taps, uses_content, uses_style, uses_tv
from nst_tui.sizes import AUTO, MiB, parse_budget, show_bytes

# ---- the network, torch-free ----------------------------------------------------------

# Convs per block (block i+1's first conv is tap i) and each block's width: the engine's
# backbones read these too.
BLOCKS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)


def arch_of(backbone: str) -> str:
    """The layout a backbone name runs: vgg16 (vgg16, vgg16-caffe) or vgg19. `auto` and a
    .pth file are planned as vgg19, the larger: what `auto` picks when its weights can be
    had, and the layout that a state dict's header does not say before torch reads it."""
    return "vgg16" if backbone.startswith("vgg16") else "vgg19"


def canvas_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) of a width x height image fitted to `size` on its long edge, rounded
    as engine/images.fit_long_edge rounds."""
    scale = size / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def pool_out(n: int) -> int:
    return (n - 2) // 2 + 1 if n >= 2 else 0  # 2x2, stride 2, floor: as nn.MaxPool2d(2, 2)


@dataclass(frozen=True)
class Net:
    """What the plan needs of a batch's network: its layout and taps."""

    arch: str
    taps: frozenset[int]
    pooling: str = "max"

    @property
    def depth(self) -> int:
        return max(self.taps) if self.taps else 0

    @classmethod
    def of(cls, cfgs: Sequence[Config], arch: str | None = None) -> Net:
        taps = frozenset().union(*(active_taps(c) for c in cfgs)) or frozenset({0})
        return cls(arch or arch_of(cfgs[0].backbone), taps, cfgs[0].pooling)

    def conv_params(self, depth: int | None = None) -> int:
        """Weights and biases of the convs that run (up to the deepest tap's first conv),
        or of every conv of the layout (depth None: the cached backbone holds them all)."""
        blocks = BLOCKS[self.arch]
        count, c_in = 0, 3
        last = len(blocks) - 1 if depth is None else depth
        for b in range(last + 1):
            n = blocks[b] if (depth is None or b < depth) else 1
            for _ in range(n):
                count += WIDTHS[b] * c_in * 9 + WIDTHS[b]
                c_in = WIDTHS[b]
        return count

    def tap_shapes(self, height: int, width: int) -> dict[int, tuple[int, int, int]]:
        """Each tap's (channels, h, w) on a height x width canvas."""
        out = {}
        h, w = height, width
        for b in range(self.depth + 1):
            if b > 0:
                h, w = pool_out(h), pool_out(w)
            if b in self.taps:
                out[b] = (WIDTHS[b], h, w)
        return out

    def conv_flops(self, height: int, width: int) -> float:
        """Forward flops of the convs on one canvas (engine/flops.py's count, torch-free)."""
        blocks, total, c_in = BLOCKS[self.arch], 0.0, 3
        h, w = height, width
        for b in range(self.depth + 1):
            if b > 0:
                h, w = pool_out(h), pool_out(w)
            for _ in range(blocks[b] if b < self.depth else 1):
                total += 2.0 * c_in * WIDTHS[b] * 9 * h * w
                c_in = WIDTHS[b]
        return total


# ---- what a pass holds ---------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """A cell's loss terms, as far as their memory goes."""

    content: frozenset[int]  # layers with a content term
    style: frozenset[int]  # layers with a style term
    stats: str = "gram"  # gram | w2
    histogram: bool = False
    tv: bool = True

    @classmethod
    def of(cls, cfg: Config) -> Terms:
        return cls(
            frozenset(cfg.content_layers) if uses_content(cfg.mode) else frozenset(),
            frozenset(cfg.style_layers) if uses_style(cfg.mode) else frozenset(),
            cfg.style_stats,
            cfg.histogram > 0 and uses_style(cfg.mode),
            uses_tv(cfg.mode),
        )


def element_bytes(precision: str, device: Device) -> int:
    """Bytes of an activation: bf16 runs the network in bfloat16; `auto` is bf16 where the
    device has fast bf16 (engine/accel.resolve_precision: Device.bf16)."""
    return 2 if precision == "bf16" or (precision == "auto" and device.bf16) else 4


@dataclass(frozen=True)
class Pass:
    """One forward pass with grad over a height x width window, per canvas, in bytes: what
    autograd saves (`saved`), the taps in the network's precision (their gradients wait
    there while the backward pass runs down to them), the largest tap in float32 and the
    largest map in the network's precision."""

    saved: int
    taps: int
    largest_tap: int
    largest: int

    bf16: bool = False

    def peak(self) -> int:
        """What the pass holds at the peak of its backward: what is saved, the taps'
        gradients (computed first, by the losses, and waiting for the backward pass to reach
        their layer), and in bf16 the float32 gradients of the largest tap being cast."""
        return int(self.saved + self.taps + (BF16_MAPS * self.largest_tap if self.bf16 else 0))


def grad_pass(
    net: Net,
    terms: Terms,
    height: int,
    width: int,
    elem: int,
    packed: bool = True,
    recompute: bool = False,
) -> Pass:
    """What a forward pass with grad saves for the backward, per canvas: each ReLU's
    result (the next conv's or the pool's input), max pooling's int64 indices, the taps
    in float32 (cast back from bf16: a copy), the losses' differences, TV's. `packed`
    (CPU, engine/packed.py): a conv saves nothing, its input gradient needs only its
    weights; else (cuDNN) each conv saves its input too: the canvas cast for the network
    and each pooling's output. `recompute` (FeatureExtractor.forward): each block keeps
    only its input, and one block at a time holds what it saves, run again in the
    backward pass."""
    per_block, inputs = network_saves(net, height, width, elem, packed)
    # Recomputing, the backward pass starts with the deepest block run again, while all
    # else is held: the peak. The first, largest block runs again last, when the deeper
    # blocks' inputs, taps and saves are gone (measured: benchmarks/README.md).
    saved = inputs + per_block[-1] if recompute else sum(per_block)
    # The taps and the losses, in float32.
    taps, largest_tap = 0, 0
    for i, (c, th, tw) in net.tap_shapes(height, width).items():
        m = c * th * tw * 4
        taps += c * th * tw * elem
        largest_tap = max(largest_tap, m)
        if i in terms.style and terms.stats == "gram":
            saved += m  # the tap (a float32 copy of a bf16 one), saved by the Gram's bmm
        if i in terms.content:
            saved += m  # (F - T), saved by pow
        if i in terms.style and terms.stats == "w2":
            saved += m  # F - mean, saved by the covariance's bmm
        if i in terms.style and terms.histogram:
            saved += m  # F - matched, saved by pow
    if terms.tv:
        saved += 2 * 3 * height * width * 4  # the neighbours' differences
    largest = max(c * h * w * elem for c, h, w in _maps(net, height, width)[1:])
    return Pass(saved, taps, largest_tap, max(largest, 3 * height * width * 4), elem == 2)


def network_saves(
    net: Net, height: int, width: int, elem: int, packed: bool = True
) -> tuple[list[int], int]:
    """What each block of the network saves for the backward pass on a height x width
    canvas (each ReLU's result, then the pooling into the next block: max pooling's int64
    indices; without packed convs each conv's input too), and the blocks' inputs (the
    canvas cast for the network, then each pooling's output): what recomputing blocks
    keeps instead (FeatureExtractor.forward)."""
    blocks = BLOCKS[net.arch]
    h, w = height, width
    inputs = 3 * h * w * elem  # block 0's
    per_block = []
    for b in range(net.depth + 1):
        c = WIDTHS[b]
        saved = 0 if packed else (3 if b == 0 else WIDTHS[b - 1]) * h * w * elem  # conv's
        if b < net.depth:
            saved += c * h * w * elem * blocks[b]  # each conv's ReLU result
            h, w = pool_out(h), pool_out(w)
            if net.pooling == "max":
                saved += c * h * w * 8  # the pooling's indices (its input: the ReLU's)
            inputs += c * h * w * elem  # its output, the next block's input
        per_block.append(saved)
    return per_block, inputs


def nograd_pass(net: Net, height: int, width: int, elem: int) -> int:
    """What encoding a height x width image (no grad) holds beyond the taps it keeps in
    float32: in bf16 the taps before their cast to float32 (the pass's peak); in float32
    the largest maps with their neighbours (NOGRAD_MAPS of them)."""
    taps = sum(c * h * w for c, h, w in net.tap_shapes(height, width).values())
    largest = max(c * h * w for c, h, w in _maps(net, height, width))
    return int(taps * elem if elem != 4 else NOGRAD_MAPS * largest * 4)


def taps_bytes(net: Net, height: int, width: int, layers: frozenset[int] | None = None) -> int:
    """The taps (all, or `layers`) of a height x width image in float32."""
    shapes = net.tap_shapes(height, width)
    return sum(c * h * w * 4 for i, (c, h, w) in shapes.items() if layers is None or i in layers)


def _maps(net: Net, height: int, width: int) -> list[tuple[int, int, int]]:
    out = [(3, height, width)]
    h, w = height, width
    for b in range(net.depth + 1):
        if b > 0:
            h, w = pool_out(h), pool_out(w)
        out.append((WIDTHS[b], h, w))
    return out


# ---- calibrated constants ---------------------------------------------------------------
# Fitted to measured peaks (benchmarks/memory.py --calibrate, CPU; see benchmarks/README.md
# for the table they were fitted on and the one they were checked against).

# The step in bf16: beside what is saved and the taps' waiting gradients, the float32
# gradients of the largest tap (its Gram's and content term's) on their way to bfloat16,
# in multiples of that tap in float32.
BF16_MAPS = 0.8
# The targets' pass in float32: the largest maps with their neighbours, in multiples of
# the largest map.
NOGRAD_MAPS = 0.6
# What each phase holds beside the arithmetic (the allocator's small blocks, oneDNN's
# scratch, the images being read).
TARGETS_OVERHEAD = 40 * MiB
STEP_OVERHEAD = 64 * MiB
# Adam: its two moments. (The temporaries of its update, the denominator, come after the
# backward pass, when the activations are gone: not at the peak.)
ADAM_VECTORS = 2
# L-BFGS beside its history (two vectors a pair): the flat gradient, the last one, the
# direction and the two-loop recursion's work vector.
LBFGS_VECTORS = 4
# What loading torch and the engine adds to a process on a CPU (its libraries' resident
# pages; measured: the resident memory after the engine's imports, less before). Once
# torch is loaded the plan reads the process's own resident memory instead.
TORCH_BYTES = 680 * MiB
# What a GPU run holds beside its tensors: nothing in max_memory_allocated, but the
# budget must leave room for the CUDA context and the caching allocator's rounding.
CUDA_CONTEXT_BYTES = 512 * MiB
# Loading the weights: the file (or the ONNX model) is read whole, then the convs are kept.
# vgg16-caffe's is the ONNX model's, read on the first run; later runs read a 59 MB copy
# (engine/backbones.caffe_cache_path): the larger is counted (the plan does not look).
WEIGHT_FILE_BYTES = {"vgg16": 528 * MiB, "vgg19": 548 * MiB, "vgg16-caffe": 150 * MiB}
# Input shapes a packed convolution keeps its weights packed for (engine/packed.SHAPES_KEPT).
PACKED_SHAPES = 4
# The share of a budget the plan fills: the rest is room for the prediction's error
# (within ±5% of the measured peaks it was fitted to, benchmarks/README.md).
HEADROOM = 0.9
# A CPU run whose predicted peak is above this share of its budget (or that recomputes or
# tiles) holds its memory tightly (heap.set_allocator): the plan's error matters there.
# Below it, glibc's faster default may overshoot the plan by some 10%, with room to spare.
TIGHT_SHARE = 0.5
# How much of what is free `auto` takes: the rest is for everything else on the machine.
AUTO_SHARE = {"cpu": 0.8, "cuda": 0.9}


# ---- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """What the plan knows of the device a run will use."""

    name: str  # cpu | cuda | cuda:N
    free: int | None = None  # bytes free now (CPU: available RAM); None: not known (yet)
    # What the budget already holds: on a CPU this process's resident memory, on a GPU
    # the tensors this process has there.
    used: int = 0
    # CPU: the process holds torch already (else TORCH_BYTES more is coming); CUDA: the
    # process has its CUDA context (else the auto budget leaves room for one).
    torch_loaded: bool = False
    weights_loaded: bool = False  # the backbone's weights are already held
    bf16: bool = False  # precision = auto runs bf16 here (AMX; a GPU of capability 8.0+)

    @property
    def cuda(self) -> bool:
        return self.name.startswith("cuda")

    def auto_budget(self) -> int | None:
        """max_memory = auto: a share of what is free (the whole process on a CPU)."""
        if self.free is None:
            return None
        if self.cuda:
            return int(AUTO_SHARE["cuda"] * self.free) - (
                0 if self.torch_loaded else CUDA_CONTEXT_BYTES
            )
        return self.used + int(AUTO_SHARE["cpu"] * self.free)


@dataclass(frozen=True)
class Estimate:
    """A predicted peak, in bytes, and what it is made of."""

    parts: dict[str, int]

    @property
    def peak(self) -> int:
        return max(self.phases.values())

    @property
    def phases(self) -> dict[str, int]:
        """The three moments a run can peak at: loading the weights, the targets' pass,
        and the optimization's step."""
        p = self.parts
        base = p.get("process", 0)
        return {
            "weights": base + p.get("weight file", 0),
            "targets": base + p.get("weights", 0) + p.get("targets pass", 0),
            "step": base
            + p.get("weights", 0)
            + p.get("canvas state", 0)
            + p.get("optimizer", 0)
            + p.get("targets", 0)
            + p.get("activations", 0),
        }

    @property
    def limit(self) -> str:
        """The phase that sets the peak."""
        phases = self.phases
        return max(phases, key=lambda k: phases[k])


@dataclass(frozen=True)
class Fit:
    """How a scale runs within the budget."""

    tile: int  # 0: untiled
    rows: int = 1
    cols: int = 1
    window: tuple[int, int] = (0, 0)  # the largest tile with its margins (h, w)
    estimate: Estimate = field(default_factory=lambda: Estimate({}))
    computed: float = 1.0  # pixels a pass computes, over the canvas's (the margins' cost)
    recompute: bool = False  # untiled, each block run again in the backward pass

    @property
    def peak(self) -> int:
        return self.estimate.peak

    def describe(self) -> str:
        if self.recompute:
            return RECOMPUTING
        if not self.tile:
            return "untiled"
        return f"{self.rows}×{self.cols} tiles of {self.tile} px"


@dataclass(frozen=True)
class ScalePlan:
    size: int
    height: int
    width: int
    untiled: Estimate
    fit: Fit | None  # None: nothing fits
    flops: float  # counted work of one untiled iteration (engine/flops.py's convention)

    @property
    def tiled(self) -> bool:
        return self.fit is not None and self.fit.tile > 0

    @property
    def recompute(self) -> bool:
        return self.fit is not None and self.fit.recompute


@dataclass(frozen=True)
class Plan:
    """A run's memory plan: each scale's predicted peak and how it fits the budget."""

    device: Device
    budget: int | None  # bytes; None: not known (auto on a device not probed yet)
    budget_text: str  # the value as given (auto, 6GiB)
    batch: int
    scales: tuple[ScalePlan, ...]
    refused: str  # why tiles are not an option ("" when they are)
    context: _Context = field(repr=False, compare=False)  # what it was made from

    @property
    def fits(self) -> bool:
        return all(s.fit is not None for s in self.scales)

    @property
    def peak(self) -> int:
        """The predicted peak of the run as it will run (untiled where nothing fits)."""
        return max((s.fit or Fit(0, estimate=s.untiled)).peak for s in self.scales)

    @property
    def tight(self) -> bool:
        """Whether a CPU run of this plan needs its memory held as the plan counts it: near
        its budget (TIGHT_SHARE), or recomputing or in tiles. Not on a GPU (its tensors are
        the caching allocator's) nor where the budget is not known."""
        if self.device.cuda or self.budget is None:
            return False
        squeezed = any(s.tiled or s.recompute for s in self.scales)
        return squeezed or self.peak > TIGHT_SHARE * self.budget

    @property
    def untiled_peak(self) -> int:
        return max(s.untiled.peak for s in self.scales)

    @property
    def recompute_peak(self) -> int:
        """The largest scale's predicted peak untiled with each block recomputed."""
        return self.recomputed(self.last).peak

    def recomputed(self, scale: ScalePlan) -> Estimate:
        """A scale's estimate untiled with each block recomputed."""
        return estimate(_at_scale(self.context, scale.size), scale.height, scale.width, None, True)

    @property
    def last(self) -> ScalePlan:
        return self.scales[-1]

    def tile_for(self, size: int) -> int:
        """The tile the plan picked for the scale of this size (0: untiled or not planned)."""
        for s in self.scales:
            if s.size == size and s.fit is not None:
                return s.fit.tile
        return 0

    def of_budget(self) -> str:
        """'of 17.7 GiB (auto: 80% of 22.1 free) on cpu'."""
        where = f"on {self.device.name}"
        if self.budget is None:
            return f"{where} (free memory not known yet)"
        if self.budget_text.strip().lower() == AUTO and self.device.free is not None:
            return f"of {show_bytes(self.budget)} ({show_bytes(self.device.free)} free) {where}"
        return f"of {show_bytes(self.budget)} budget {where}"

    def verdict(self) -> str:
        """fits | fits, recomputing blocks | 3×2 tiles of 512 px | does not fit: why."""
        if not self.fits:
            return "does not fit: " + self.reason()
        tiled = [s for s in self.scales if s.tiled or s.recompute]
        if not tiled:
            return "fits"
        fit = tiled[-1].fit
        assert fit is not None
        more = f" (at {tiled[-1].size} px)" if len(self.scales) > 1 else ""
        return fit.describe() + more

    def line(self) -> str:
        """One line for the dashboard: ≈3.2 GiB of 17.7 GiB (22.1 free) on cpu · fits."""
        return f"≈{show_bytes(self.peak)} {self.of_budget()} · {self.verdict()}"

    def reason(self) -> str:
        """Why nothing fits, in words ('' when it fits)."""
        bad = next((s for s in self.scales if s.fit is None), None)
        if bad is None or self.budget is None:
            return ""
        smallest = self.smallest(bad)
        what = f"size {bad.size}" + (f" ({self.batch} canvases)" if self.batch > 1 else "")
        forced = self.forced_tile(bad)
        if forced is not None:
            need = forced.estimate
            how = (
                f"needs {show_bytes(need.peak)} in tiles of {forced.tile} px (tile = "
                f"{forced.tile}: {self.heaviest(need)})"
            )
        elif smallest is None:  # tiles refused, or the canvas is one tile already
            need = self.recomputed(bad)
            why = f", and cannot tile: {self.refused}" if self.refused else ""
            how = (
                f"needs {show_bytes(need.peak)} even recomputing blocks "
                f"({self.heaviest(need)}){why}"
            )
        else:
            need = smallest.estimate
            how = (
                f"needs {show_bytes(need.peak)} even in tiles of {smallest.tile} px"
                f" ({self.heaviest(need)})"
            )
        # The plan fills HEADROOM of a budget: the budget that would serve it.
        return f"{what} {how}, a budget of {show_bytes(need.peak / HEADROOM)} or more"

    def refusal(self) -> str:
        """The one line that says why the run cannot go: nothing fits its budget."""
        where = self.of_budget().removeprefix("of ")
        return f"max_memory {self.budget_text.strip()} ({where}): {self.reason()}; {self.remedy()}"

    def remedy(self) -> str:
        """What to change, from the part of the estimate that weighs most."""
        if self.refused:
            return "set histogram = 0 (tiles then serve it), lower size or raise max_memory"
        scale = next((s for s in self.scales if s.fit is None), self.last)
        if self.forced_tile(scale) is not None:
            return "lower tile, or set tile = 0 and the plan chooses"
        smallest = self.smallest(scale)
        parts = (smallest.estimate if smallest is not None else scale.untiled).parts
        cfg = self.context.cfgs[0]
        if cfg.optimizer == "lbfgs" and parts.get("optimizer", 0) * 2 >= max(parts.values()):
            return "lower history, use adam, lower size or raise max_memory"
        return "lower size or raise max_memory"

    def forced_tile(self, scale: ScalePlan) -> Fit | None:
        """The fit of the tile the config forces, where that tile is what does not fit
        and smaller ones would (so the remedy is the tile, not the budget)."""
        forced = self.context.cfgs[0].tile
        if not forced or self.refused or forced >= max(scale.height, scale.width):
            return None
        smallest = self.smallest(scale)
        if smallest is None or not within(smallest.peak, self.budget):
            return None
        return fit_tiles_at(_at_scale(self.context, scale.size), scale, forced)

    def smallest(self, scale: ScalePlan) -> Fit | None:
        """The smallest tiles' fit of a scale (None where tiles are refused, or where the
        smallest tile would hold the whole canvas)."""
        if self.refused or max(scale.height, scale.width) <= MIN_TILE:
            return None
        return fit_tiles_at(_at_scale(self.context, scale.size), scale, MIN_TILE)

    @staticmethod
    def heaviest(est: Estimate) -> str:
        """The largest part of an estimate, in words."""
        parts = {k: v for k, v in est.parts.items() if k not in ("weight file", "targets pass")}
        phase = est.limit
        if phase == "targets":
            return f"the targets' pass alone holds {show_bytes(est.parts['targets pass'])}"
        if phase == "weights":
            return f"reading the weights holds {show_bytes(est.parts['weight file'])}"
        name = max(parts, key=lambda k: parts[k])
        return f"{PART_WORDS.get(name, name)}: {show_bytes(parts[name])}"

    def record(self) -> dict[str, object]:
        """The plan's figures as run.json (and `run --plan --json`) keep them."""
        fit = self.last.fit
        out: dict[str, object] = {
            "recompute": fit is not None and fit.recompute,
            "predicted_peak_bytes": self.peak,
            "predicted_peak": show_bytes(self.peak),
            "untiled_peak_bytes": self.untiled_peak,
            # What the largest scale needs untiled with each block recomputed.
            "recompute_peak_bytes": self.recompute_peak,
            "budget": self.budget_text,
            "budget_bytes": self.budget,
            "device": self.device.name,
            "device_free_bytes": self.device.free,
            "plan": self.verdict(),
            # The CPU's allocator as the run sets it (heap.set_allocator): tight or roomy.
            "allocator": "tight" if self.tight else "roomy",
        }
        if fit is not None and fit.tile:
            out["tile"] = fit.tile
            out["tiles"] = f"{fit.rows}x{fit.cols}"
        return out

    def lines(self) -> list[str]:
        """`nst-tui run --plan`: every scale's figures and the verdict."""
        out = []
        for s in self.scales:
            head = f"{s.size} px ({s.width}x{s.height})"
            work = f"{s.flops / 1e9:.1f} GFLOP/iteration untiled"
            if s.fit is None:
                out.append(f"{head}: untiled ≈{show_bytes(s.untiled.peak)}; does not fit")
                continue
            if s.fit.recompute:
                out.append(
                    f"{head}: untiled ≈{show_bytes(s.untiled.peak)}; {RECOMPUTING} "
                    f"≈{show_bytes(s.fit.peak)}; {work}, and the blocks' forward again"
                )
            elif s.fit.tile:
                work += f", {s.fit.computed:.1f}× the pixels per pass in tiles (margins)"
                out.append(
                    f"{head}: untiled ≈{show_bytes(s.untiled.peak)}; "
                    f"{s.fit.describe()} (windows up to {s.fit.window[1]}x{s.fit.window[0]}) "
                    f"≈{show_bytes(s.fit.peak)}; {work}"
                )
            else:
                out.append(f"{head}: ≈{show_bytes(s.untiled.peak)} untiled; {work}")
        parts = self.last.fit.estimate if self.last.fit else self.last.untiled
        shown = ", ".join(
            f"{PART_WORDS.get(k, k)} {show_bytes(v)}" for k, v in parts.parts.items() if v
        )
        out.append(f"at {self.last.size} px: {shown}; peaks in {PHASE_WORDS[parts.limit]}")
        out.append(f"memory: {self.line()}")
        return out


# How the plan says it runs a canvas untiled with each block recomputed (Fit.recompute).
RECOMPUTING = "fits, recomputing blocks"

PART_WORDS = {
    "process": "the process (Python, torch, libraries)",
    "weights": "the weights",
    "weight file": "reading the weights",
    "targets pass": "the targets' pass",
    "canvas state": "the canvas, its gradient and EMA",
    "optimizer": "the optimizer's state",
    "targets": "the content targets",
    "activations": "the activations",
}
PHASE_WORDS = {
    "weights": "loading the weights",
    "targets": "the targets' pass",
    "step": "the optimization step",
}


@dataclass(frozen=True)
class _Context:
    cfgs: tuple[Config, ...]
    net: Net
    device: Device
    content_wh: tuple[int, int]
    style_whs: tuple[tuple[int, int], ...]


def estimate(
    ctx: _Context,
    height: int,
    width: int,
    window: tuple[int, int] | None,
    recompute: bool = False,
) -> Estimate:
    """The peak of one scale at height x width; `window` (h, w): in tiles, each pass over
    windows of at most that size; `recompute`: untiled, each block run again in the
    backward pass."""
    cfg = ctx.cfgs[0]
    batch = len(ctx.cfgs)
    elem = element_bytes(cfg.precision, ctx.device)
    terms = [Terms.of(c) for c in ctx.cfgs]
    canvas = 3 * height * width * 4  # one float32 canvas
    dev = ctx.device
    parts: dict[str, int] = {}
    parts["process"] = dev.used + (0 if dev.cuda or dev.torch_loaded else TORCH_BYTES)
    packed = not dev.cuda  # CPU: engine/packed.py's convolutions (oneDNN)
    # The extractor's convs (up to the deepest tap, cast to bfloat16 once for bf16) and,
    # on a CPU, the cached backbone (every conv, float32) unless loaded already (then in
    # `used`); packed convs hold two reordered copies (forward, input gradient) for each
    # input shape met, the last PACKED_SHAPES kept: the canvas's and each style's
    # untiled, the windows' in tiles.
    held = ctx.net.conv_params(ctx.net.depth) * elem
    cached = 0 if dev.cuda or dev.weights_loaded else ctx.net.conv_params() * 4
    shapes = PACKED_SHAPES if window is not None else 1 + len(set(ctx.style_whs))
    packs = 2 * held * min(PACKED_SHAPES, shapes) if packed else 0
    parts["weights"] = held + cached + packs
    if not dev.cuda and not dev.weights_loaded:
        parts["weight file"] = weight_file_bytes(cfg.backbone, ctx.net.arch)
    # The targets' pass: each image's taps kept in float32 (the content's while each style
    # is encoded), beside the pass of the image being encoded.
    ch, cw = canvas_shape(*ctx.content_wh, max(height, width))
    images = [(ch, cw)]
    for sw, sh in ctx.style_whs:
        edge = max(1, round(max(height, width) * cfg.style_scale))
        images.append(canvas_shape(sw, sh, edge))
    if window is None:
        kept = sum(taps_bytes(ctx.net, h, w) for h, w in images)
        passing = max(nograd_pass(ctx.net, h, w, elem) for h, w in images)
    else:  # in tiles (engine/tiled_targets.py): the content layers whole, a window's pass
        layers = frozenset().union(*(t.content for t in terms))
        kept = taps_bytes(ctx.net, ch, cw, layers) + taps_bytes(ctx.net, *window)
        passing = nograd_pass(ctx.net, *window, elem)
    parts["targets pass"] = (kept + passing + TARGETS_OVERHEAD) * batch
    # Per cell, at the step's peak (its backward pass): the canvas, and a second one, the
    # objective's input (the cells' canvases concatenated) while the pass runs, the
    # gradient once it is done; the EMA's average; the original colours. (The first step
    # also keeps the start, in case the first loss is not finite: while the optimizer has
    # no state yet, so it never adds to the peak.)
    state = 0
    optimizer = 0
    targets = 0
    taps = ctx.net.tap_shapes(height, width)
    for c, t in zip(ctx.cfgs, terms, strict=True):
        state += canvas * (2 + (1 if c.ema else 0) + (1 if c.original_colors else 0))
        if c.optimizer == "lbfgs":
            optimizer += canvas * (2 * c.history + LBFGS_VECTORS)
        else:
            optimizer += canvas * ADAM_VECTORS
        targets += sum(taps[i][0] * taps[i][1] * taps[i][2] * 4 for i in t.content)
        if t.histogram:
            targets += sum(taps[i][0] * taps[i][1] * taps[i][2] * 4 for i in t.style)
    parts["canvas state"] = state
    parts["optimizer"] = optimizer
    parts["targets"] = targets
    union = Terms(
        frozenset().union(*(t.content for t in terms)),
        frozenset().union(*(t.style for t in terms)),
        terms[0].stats,
        any(t.histogram for t in terms),
        any(t.tv for t in terms),
    )
    if window is None:
        p = grad_pass(ctx.net, union, height, width, elem, packed, recompute)
        parts["activations"] = batch * p.peak() + STEP_OVERHEAD
    else:
        wh, ww = window
        # One window's pass with grad (no TV: the objective computes it on the whole
        # canvas, and its backward runs first: its gradient waits, its differences are
        # gone), the canvas's gradient assembled beside it (measured at 3072 px:
        # benchmarks/README.md).
        p = grad_pass(ctx.net, _no_tv(union), wh, ww, elem, packed)
        tv = canvas if union.tv else 0
        parts["activations"] = batch * (p.peak() + tv + canvas) + STEP_OVERHEAD
    return Estimate(parts)


def weight_file_bytes(backbone: str, arch: str) -> int:
    """What reading a backbone's weights holds at once: a .pth file's size (torch.load
    reads it whole), else the named weights' (WEIGHT_FILE_BYTES)."""
    if backbone.endswith((".pth", ".pt")):
        try:
            return os.stat(os.path.expanduser(backbone)).st_size
        except OSError:
            pass
    return WEIGHT_FILE_BYTES.get(backbone, WEIGHT_FILE_BYTES[arch])


def _no_tv(t: Terms) -> Terms:
    return Terms(t.content, t.style, t.stats, t.histogram, False)


# ---- tiles, torch-free -----------------------------------------------------------------
# The tiles' arithmetic of engine/tiles.py (axis_spans, receptive_fields), for the plan
# before torch loads; tests/unit/test_memory_plan.py checks the two agree.


def _fields(net: Net) -> list[tuple[int, int, int]]:
    """(stride, lo, hi) of each tap's receptive field."""
    out = []
    blocks = BLOCKS[net.arch]
    for tap in sorted(net.taps):
        ops: list[str] = []
        for b in range(tap + 1):
            if b > 0:
                ops.append("pool")
            ops += ["conv"] * (blocks[b] if b < tap else 1)
        stride, lo, hi = 1, 0, 0
        for op in reversed(ops):
            if op == "conv":
                lo, hi = lo + 1, hi + 1
            else:
                stride, lo, hi = 2 * stride, 2 * lo, 2 * hi + 1
        out.append((stride, lo, hi))
    return out


def axis_windows(length: int, tile: int, net: Net) -> list[tuple[int, int, int, int]]:
    """(start, stop, lo, hi) of each tile along an axis: engine/tiles.axis_spans."""
    fields = _fields(net)
    unit = max(f[0] for f in fields)
    step = max(unit, tile // unit * unit)
    n = -(-length // step)
    cuts = sorted({0, length, *(unit * -(-k * length // (n * unit)) for k in range(1, n))})
    spans = []
    for start, stop in itertools.pairwise(cuts):
        lo, hi = start, stop
        for s, flo, fhi in fields:
            count = length // s
            first = max(0, -(-(start - fhi) // s))
            last = min(count, (stop - 1 + flo) // s + 1)
            if last > first:
                lo = min(lo, first * s - flo)
                hi = max(hi, (last - 1) * s + fhi + 1)
        lo = max(0, lo) // unit * unit
        hi = min(length, -(-hi // unit) * unit)
        spans.append((start, stop, lo, hi))
    return spans


def fit_tiles_at(ctx: _Context, scale: ScalePlan, tile: int) -> Fit:
    """The fit of `scale` in tiles of `tile` px."""
    rows = axis_windows(scale.height, tile, ctx.net)
    cols = axis_windows(scale.width, tile, ctx.net)
    window = (max(r[3] - r[2] for r in rows), max(c[3] - c[2] for c in cols))
    computed = sum(r[3] - r[2] for r in rows) * sum(c[3] - c[2] for c in cols)
    return Fit(
        tile,
        len(rows),
        len(cols),
        window,
        estimate(ctx, scale.height, scale.width, window),
        computed / (scale.height * scale.width),
    )


def _unit(net: Net) -> int:
    return max(f[0] for f in _fields(net))


def within(peak: int, budget: int | None) -> bool:
    """Whether a predicted peak fits a budget with HEADROOM to spare (a budget not known
    yet holds anything)."""
    return budget is None or peak <= HEADROOM * budget


def choose_fit(ctx: _Context, scale: ScalePlan, budget: int | None, refused: str) -> Fit | None:
    """As it is when it fits (or the budget is not known); else untiled with each block
    recomputed in the backward pass (the same gradient, for one more forward pass: less
    than tiles' margins and two passes cost); else the largest tile whose predicted peak
    fits; None when even the smallest does not. `tile` set in the config forces that tile
    (where one tile would not hold the whole canvas)."""
    forced = ctx.cfgs[0].tile
    whole = max(scale.height, scale.width)
    if forced and not refused and forced < whole:
        fit = fit_tiles_at(ctx, scale, forced)
        return fit if within(fit.peak, budget) else None
    if within(scale.untiled.peak, budget):
        return Fit(0, estimate=scale.untiled)
    recomputed = estimate(ctx, scale.height, scale.width, None, recompute=True)
    if within(recomputed.peak, budget):
        return Fit(0, recompute=True, estimate=recomputed)
    unit = _unit(ctx.net)
    lo, hi = max(MIN_TILE, unit) // unit, (whole - 1) // unit
    if refused or hi < lo:  # tiles refused, or even the smallest holds the whole canvas
        return None
    if not within(fit_tiles_at(ctx, scale, lo * unit).peak, budget):
        return None
    while lo < hi:  # the largest multiple of the pooling grid that fits
        mid = (lo + hi + 1) // 2
        if within(fit_tiles_at(ctx, scale, mid * unit).peak, budget):
            lo = mid
        else:
            hi = mid - 1
    fit = fit_tiles_at(ctx, scale, lo * unit)
    # Said as the largest interior it makes (2×2 tiles of 2048 px, not of the 2720 px
    # that cut a 4096 px canvas the same way), where that tile cuts it the same way.
    rows = axis_windows(scale.height, lo * unit, ctx.net)
    cols = axis_windows(scale.width, lo * unit, ctx.net)
    interior = max(stop - start for start, stop, _, _ in (*rows, *cols))
    snug = -(-interior // unit) * unit
    same = fit_tiles_at(ctx, scale, snug)
    return same if (same.rows, same.cols, same.window) == (fit.rows, fit.cols, fit.window) else fit


def plan(
    cfgs: Config | Sequence[Config],
    content_wh: tuple[int, int],
    device: Device,
    style_whs: Sequence[tuple[int, int]] = (),
    arch: str | None = None,
    refused: str = "",
) -> Plan:
    """The memory plan of a batch of cells (a run: a batch of one) on `device`.

    `content_wh` is the content image's (width, height) (its header: the aspect ratio),
    `style_whs` each style's; `arch` the layout when known (the engine's backbone), else
    the config's (`arch_of`); `refused` why tiles are not an option (config.tiles_refused).
    """
    cells = (cfgs,) if isinstance(cfgs, Config) else tuple(cfgs)
    cfg = cells[0]
    net = Net.of(cells, arch)
    ctx = _Context(cells, net, device, content_wh, tuple(style_whs))
    budget_value = parse_budget(cfg.max_memory)
    budget = budget_value if budget_value is not None else device.auto_budget()
    scales = []
    for size in list(cfg.scales) or [cfg.size]:
        h, w = canvas_shape(*content_wh, size)
        sctx = _at_scale(ctx, size)
        untiled = estimate(sctx, h, w, None)
        flops = net.conv_flops(h, w) * 2 + sum(
            6.0 * c * c * a * b
            for i, (c, a, b) in net.tap_shapes(h, w).items()
            if i in Terms.of(cfg).style
        )
        scale = ScalePlan(size, h, w, untiled, None, flops * len(cells))
        fit = choose_fit(sctx, scale, budget, refused)
        scales.append(ScalePlan(size, h, w, untiled, fit, scale.flops))
    return Plan(device, budget, cfg.max_memory, len(cells), tuple(scales), refused, ctx)


def _at_scale(ctx: _Context, size: int) -> _Context:
    """The context of one scale of a multi-scale run (its cells at that size)."""
    if not ctx.cfgs[0].scales:
        return ctx
    cells = tuple(c.replace(size=size, scales=[]) for c in ctx.cfgs)
    return _Context(cells, ctx.net, ctx.device, ctx.content_wh, ctx.style_whs)


def batch_fits(
    cfgs: Sequence[Config],
    content_wh: tuple[int, int],
    device: Device,
    style_whs: Sequence[tuple[int, int]] = (),
) -> bool:
    """Whether one batch of these cells (a sweep's, sharing network and canvas shape) fits
    the budget untiled (a batch is never cut for memory into tiles: its cells are)."""
    the_plan = plan(cfgs, content_wh, device, style_whs)
    return within(the_plan.untiled_peak, the_plan.budget)
