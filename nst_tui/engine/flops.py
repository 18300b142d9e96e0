"""Floating-point work of one optimization iteration, counted from layer shapes.

One iteration is one evaluation of the objective and its backward pass: the canvas
goes forward through the extractor and the losses, then the total goes backward to
the canvas. The network is frozen (requires_grad False), so the backward pass
computes input gradients only: no weight or bias gradients.

What is counted (a multiply-add is 2 flops, as in torch.utils.flop_counter):

- conv forward: 2 * Cin * Cout * k * k * Hout * Wout per canvas, for every conv the
  extractor runs (all convs of the blocks before the deepest tap, the first conv of
  the deepest block). Bias additions are not counted.
- conv backward: the input gradient of every conv that runs, a transposed conv of
  the same size as the forward one: the same count. The first conv's input gradient
  is needed too (it leads to the canvas, which is what is optimized). No weight
  gradient: the weights are frozen.
- Gram, per style layer of C channels and H x W positions: forward bmm
  (C x HW) @ (HW x C) = 2 * C * C * HW; backward two bmms of that size, one per
  operand (F and F^T are both the same tensor that needs a gradient): 4 * C * C * HW.
  So 6 * C * C * HW per style layer in all.

Everything scales with the batch (a batch of B canvases: B times the work).

Ignored: elementwise work (ReLU, preprocessing, the pools, the MSE and TV terms,
the Gram's division, the sums and stacks of the terms, the optimizer's update) and
their backward passes. Each touches every element of a feature map a handful of
times, where a conv does 2 * Cin * 9 flops per output element (over 1,000 from the
second conv on), so together they are well under 1% of the total. The style targets
(computed once, at init) are not part of an iteration. This is also
torch.utils.flop_counter.FlopCounterMode's convention: it counts only matmuls,
convs and attention, so the two agree up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from nst_tui.engine.features import FeatureExtractor
    from nst_tui.engine.objective import Objective


@dataclass(frozen=True)
class IterationFlops:
    """Flops of one iteration (forward + backward of the objective), by kind."""

    conv_forward: float
    conv_backward: float  # input gradients only: the weights are frozen
    gram: float  # forward and backward of every style layer's Gram

    @property
    def total(self) -> float:
        return self.conv_forward + self.conv_backward + self.gram


def _conv_out(size: int, conv: nn.Conv2d, dim: int) -> int:
    k, s, d = conv.kernel_size[dim], conv.stride[dim], conv.dilation[dim]
    if isinstance(conv.padding, str):  # "same" keeps the size (stride 1); "valid" pads 0
        return size if conv.padding == "same" else (size - d * (k - 1) - 1) // s + 1
    return (size + 2 * conv.padding[dim] - d * (k - 1) - 1) // s + 1


def _pool_out(size: int, pool: nn.AvgPool2d | nn.MaxPool2d) -> int:
    k = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
    s = pool.stride if isinstance(pool.stride, int) else pool.stride[0]
    return (size - k) // (s or k) + 1  # floor mode, no padding: as nn.MaxPool2d/AvgPool2d(2, 2)


def iteration_flops(
    extractor: FeatureExtractor,
    height: int,
    width: int,
    style_layers: list[int] | tuple[int, ...] | set[int],
    batch: int = 1,
) -> IterationFlops:
    """Flops of one iteration on `batch` canvases of height x width.

    `style_layers` are the tap indices whose Gram is computed (Objective.style_layers;
    for a batch, the union over its cells: the batch computes each Gram once, for all
    canvases). Content layers add no counted work: their MSE is elementwise. A w2 style
    term's covariance costs what a Gram does, and is counted as one; its C x C products
    and eigenvalues, and the histogram term's sort, are not: with those the figure is a
    lower bound.
    """
    style = set(style_layers)
    unknown = style - set(extractor.taps)
    if unknown:
        raise ValueError(f"style layers {sorted(unknown)} are not taps of the extractor")
    conv_fwd = 0.0
    gram = 0.0
    h, w = height, width
    for b, convs in enumerate(extractor.convs):
        if b > 0:
            h, w = _pool_out(h, extractor.pool), _pool_out(w, extractor.pool)
        for j, conv in enumerate(convs):
            h, w = _conv_out(h, conv, 0), _conv_out(w, conv, 1)
            k = conv.kernel_size[0] * conv.kernel_size[1]
            cin = conv.in_channels // conv.groups  # inputs each output channel sees
            conv_fwd += 2.0 * cin * conv.out_channels * k * h * w
            if j == 0 and b in style:
                c = conv.out_channels
                gram += 6.0 * c * c * h * w  # forward 2*C*C*HW, backward twice that
    return IterationFlops(
        conv_forward=batch * conv_fwd,
        conv_backward=batch * conv_fwd,  # each conv's input gradient: same count
        gram=batch * gram,
    )


def objective_flops(objective: Objective, canvas: torch.Tensor) -> IterationFlops:
    """iteration_flops for an Objective evaluated on `canvas` (B, 3, H, W)."""
    b, _, h, w = canvas.shape
    return iteration_flops(objective.extractor, h, w, objective.style_layers, batch=b)


def achieved_tflops(flops: IterationFlops, it_per_s: float) -> float:
    """Counted work per second, in TFLOP/s, at `it_per_s` iterations per second."""
    return flops.total * it_per_s / 1e12


# Dense peaks (no sparsity) in TFLOP/s, from the vendors' datasheets, keyed by a
# substring of torch.cuda.get_device_name() (matched case-insensitively, longest first).
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # NVIDIA H200 datasheet, H200 NVL column: FP32 60; TF32 Tensor Core 835 and
    # BF16 Tensor Core 1,671 are quoted with sparsity, so dense is half of each.
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    # NVIDIA H200 datasheet, H200 SXM column (get_device_name says "NVIDIA H200"):
    # FP32 67; TF32 Tensor Core 989 is with sparsity -> 494.7 dense; BF16 Tensor Core
    # 1,979 is with sparsity -> 989.5 dense.
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.5},
    # NVIDIA RTX A4000 datasheet (the study's GPU): single-precision 19.2. Its only tensor
    # figure, "Tensor performance 153.4 TFLOPS", is FP16/BF16 with sparsity -> 76.7 dense;
    # TF32 is not on the datasheet: half the dense FP16 rate on Ampere GA10x -> 38.35
    # (48 SMs x 1.56 GHz boost x 512 dense TF32 flops/clock/SM).
    "RTX A4000": {"fp32": 19.2, "tf32": 38.35, "bf16": 76.7},
}

# Parts whose names contain a key above but whose peaks differ (laptop chips).
_NOT_LISTED = ("laptop", "mobile", "max-q")


def device_peak_tflops(device: torch.device, precision: str) -> float | None:
    """peak_tflops for a torch device; None on a CPU (no datasheet figure to divide by)."""
    if device.type != "cuda":
        return None
    return peak_tflops(torch.cuda.get_device_name(device), precision)


@dataclass(frozen=True)
class Throughput:
    """Turns iterations per second into TFLOP/s and a fraction of the device's peak."""

    flops: IterationFlops
    peak_tflop_s: float | None

    def at(self, it_per_s: float) -> tuple[float, float | None]:
        tflop_s = achieved_tflops(self.flops, it_per_s)
        return tflop_s, None if self.peak_tflop_s is None else tflop_s / self.peak_tflop_s


def peak_tflops(device_name: str, precision: str) -> float | None:
    """Dense datasheet peak for a device name and precision ("fp32", "tf32", "bf16");
    None when the device (a CPU, an unlisted GPU) or the precision is not known."""
    name = device_name.lower()
    if any(word in name for word in _NOT_LISTED):
        return None
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key.lower() in name:
            return PEAK_TFLOPS[key].get(precision.lower())
    return None


# A CPU's peak, from its matrix and vector units (no datasheet figure per part): cores x
# clock x flops per cycle per core, a multiply-add counted as 2.
# - bf16 on AMX: one TMUL per core does a 16x32 by 32x16 bf16 tile product (16 x 16 x 32
#   multiply-adds) in 16 cycles: 1,024 flops per cycle (Intel's optimization manual).
# - bf16 on AVX512-BF16 alone: VDPBF16PS, 16 lanes x 2 products, on two ports: 128.
# - fp32 on AVX-512: two 16-lane FMA ports, 64; AVX2: two 8-lane FMA ports, 32.
# The clock is the nominal one /proc/cpuinfo gives (a VM's reports its TSC's); a core
# under AMX load may run below it, and turbo above.
CPU_FLOPS_PER_CYCLE: dict[str, tuple[tuple[str, int], ...]] = {
    "bf16": (("amx_bf16", 1024), ("avx512_bf16", 128)),
    "fp32": (("avx512f", 64), ("avx2", 32)),
}


def cpu_peak_tflops(precision: str, cores: int, ghz: float, flags: set[str]) -> float | None:
    """Peak TFLOP/s of `cores` cores at `ghz` with the units `flags` names (cpuinfo's
    flags); None when none of them computes in `precision`."""
    per_cycle = next((n for flag, n in CPU_FLOPS_PER_CYCLE.get(precision, ()) if flag in flags), 0)
    return cores * ghz * per_cycle / 1e3 if per_cycle else None
