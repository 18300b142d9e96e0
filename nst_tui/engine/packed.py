"""Convolutions whose weights are laid out for oneDNN once, not at every call (CPU).

PyTorch's CPU convolution keeps its weights in the plain OIHW layout and oneDNN
reorders them into its blocked layout at every call, forward and backward: measured
at 128 px on this project's Xeon (oneDNN verbose, bf16, channels-last), those weight
reorders took about as long as the convolutions themselves, the deep 512-channel
layers (small maps, big weights) most. A style-transfer run calls the same frozen
convolutions thousands of times, so the reorder is done once here, per input shape,
with the same private ops inductor uses for frozen CPU convolutions
(`torch.ops.mkldnn._reorder_convolution_weight`, `_convolution_pointwise`).

The network is frozen and only the canvas needs a gradient, so a convolution's
backward is its input gradient alone. For a stride-1, "same"-padded convolution
that is itself a convolution of the output gradient with the weights transposed
(in and out channels swapped) and flipped in space: also packed once, also a
forward kernel. Nothing here computes weight gradients.

Only convolutions of that shape (stride 1, dilation 1, one group, odd kernel padded
by half of it: every VGG convolution) are packed; `available()` checks the ops exist
and agree with F.conv2d on this machine, else the caller keeps plain convolutions.
Activations go in and come out channels-last (oneDNN's native layout on a CPU).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

SHAPES_KEPT = 4  # packings per convolution (a sweep's batch shrinks; tiles differ in size)


def packable(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and not isinstance(conv.padding, str)
        and k[0] % 2 == 1
        and k[1] % 2 == 1
        and tuple(conv.padding) == (k[0] // 2, k[1] // 2)
    )


def _ops_exist() -> bool:
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_reorder_convolution_weight")
        and hasattr(ops, "_convolution_pointwise")
    )


@functools.cache
def available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether packed convolutions run here in `dtype` and match F.conv2d, forward and
    input gradient (checked once per process on a small convolution)."""
    if not _ops_exist():
        return False
    try:
        gen = torch.Generator().manual_seed(0)
        conv = nn.Conv2d(8, 16, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
        conv = conv.to(dtype).requires_grad_(False)
        x = torch.randn(2, 8, 9, 7, generator=gen).to(dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        plain = F.conv2d(a, conv.weight, conv.bias, padding=1)
        packed = ConvPacks(conv)(b)
        grad = torch.randn(plain.shape, generator=gen).to(dtype)
        plain.backward(grad)
        packed.backward(grad)
        assert a.grad is not None and b.grad is not None
        tol = 1e-4 if dtype == torch.float32 else 3e-2
        return bool(
            torch.allclose(packed.float(), plain.float(), rtol=tol, atol=tol * 10)
            and torch.allclose(b.grad.float(), a.grad.float(), rtol=tol, atol=tol * 10)
        )
    except Exception:  # any failure (an op missing from this build, a CPU it refuses)
        return False


class _Packed:
    """One convolution's weights for one input shape: forward, and input gradient."""

    def __init__(self, conv: nn.Conv2d, shape: tuple[int, ...]) -> None:
        ops = torch.ops.mkldnn
        w = conv.weight.detach()
        pad = conv.padding
        assert not isinstance(pad, str)  # packable() checked it
        self.padding = [int(p) for p in pad]
        ones = [1, 1]
        out_shape = [shape[0], w.shape[0], shape[2], shape[3]]
        # The input gradient of a stride-1 "same" convolution: a convolution of the output's
        # gradient with in/out channels swapped and the kernel turned by 180 degrees.
        w_t = w.transpose(0, 1).flip(2, 3).contiguous()
        self.forward = ops._reorder_convolution_weight(w, self.padding, ones, ones, 1, list(shape))
        self.backward = ops._reorder_convolution_weight(w_t, self.padding, ones, ones, 1, out_shape)
        self.bias = None if conv.bias is None else conv.bias.detach()


def _run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, pad: list[int]) -> Any:
    x = x.contiguous(memory_format=torch.channels_last)
    return torch.ops.mkldnn._convolution_pointwise(
        x, weight, bias, pad, [1, 1], [1, 1], 1, "none", [], ""
    )


class _PackedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, packed: _Packed) -> torch.Tensor:
        ctx.packed = packed
        out: torch.Tensor = _run(x, packed.forward, packed.bias, packed.padding)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        packed: _Packed = ctx.packed
        return _run(grad, packed.backward, None, packed.padding), None


class ConvPacks:
    """Calls a frozen `conv` with its weights packed for each input shape it meets (the
    last SHAPES_KEPT kept); same result as conv(x), channels-last."""

    def __init__(self, conv: nn.Conv2d) -> None:
        if not packable(conv):
            raise ValueError("only stride-1, same-padded, ungrouped convolutions are packed")
        self.conv = conv
        self.packs: OrderedDict[tuple[int, ...], _Packed] = OrderedDict()
        self.weights = self._weights()

    def _weights(self) -> tuple[int, int, int, int]:
        """Which weights the packs were made of: a write to them in place (a version) or
        new storage (a cast, a move) makes the packs stale."""
        w, b = self.conv.weight, self.conv.bias
        return (
            w.data_ptr(),
            w._version,
            0 if b is None else b.data_ptr(),
            0 if b is None else b._version,
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if (weights := self._weights()) != self.weights:
            self.packs.clear()
            self.weights = weights
        shape = tuple(x.shape)
        packed = self.packs.get(shape)
        if packed is None:
            packed = _Packed(self.conv, shape)
            self.packs[shape] = packed
            while len(self.packs) > SHAPES_KEPT:
                self.packs.popitem(last=False)
        else:
            self.packs.move_to_end(shape)
        out: torch.Tensor = _PackedConv.apply(x, packed)
        return out
