"""Recomputing blocks (FeatureExtractor.forward's `recompute`): the memory plan's first
resort when a canvas does not fit as it is. Each VGG block keeps only its input for the
backward pass and runs again there, so the gradient is the same, bit for bit (the same
kernels on the same values), and the network's saved activations shrink to the blocks'
inputs: what nst_tui.memory.network_saves counts.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from nst_tui import memory
from nst_tui.config import Config
from nst_tui.engine.device_memory import device_state, plan_canvas
from nst_tui.engine.objective import Objective, cell_targets, conv_extractor
from nst_tui.engine.optimize import initial_canvas, optimize
from nst_tui.engine.prepare import get_backbone, load_inputs, prepare
from nst_tui.memory import Net, network_saves
from nst_tui.sizes import GiB, MiB

CPU = torch.device("cpu")


def objective_pair(cfg: Config, cells: int = 1):
    """The objective of `cfg` as it is and recomputing blocks (with, for a batch of two, a
    second cell of its own weights and ReLU taps), and noise canvases."""
    content, style, _ = load_inputs(cfg, CPU)
    cfgs = [cfg, cfg.replace(alpha=10 * cfg.alpha, layer_type="relu", seed=1)][:cells]
    extractor, accel = conv_extractor(get_backbone(cfg.backbone), cfgs, CPU)
    targets = [cell_targets(extractor, accel, c, content, style) for c in cfgs]
    canvases = torch.cat([initial_canvas(c, content, None) for c in cfgs]).detach()
    plain = Objective(extractor, accel, targets)
    return plain, Objective(extractor, accel, targets, recompute=True), canvases


def loss_and_grad(objective: Objective, canvas: torch.Tensor):
    canvas = canvas.clone().requires_grad_(True)
    terms = objective(canvas)
    terms[:, 0].sum().backward()
    assert canvas.grad is not None
    return terms.detach(), canvas.grad


@pytest.mark.parametrize(
    ("precision", "layer_type", "pooling", "cells"),
    [
        ("fp32", "conv", "max", 1),
        ("fp32", "relu", "avg", 1),
        ("bf16", "conv", "max", 1),
        ("fp32", "conv", "max", 2),
    ],
)
def test_recomputed_blocks_give_the_same_gradient(
    caffe, precision: str, layer_type: str, pooling: str, cells: int
) -> None:
    cfg = tiny_config(
        size=80,
        precision=precision,
        layer_type=layer_type,
        pooling=pooling,
        style_layers=[0, 1, 2, 3, 4],
        content_layers=[3],
    )
    plain, recomputing, canvas = objective_pair(cfg, cells)
    assert recomputing.recompute and not plain.recompute
    terms, grad = loss_and_grad(plain, canvas)
    terms_again, grad_again = loss_and_grad(recomputing, canvas)
    assert torch.equal(terms, terms_again)
    assert torch.equal(grad, grad_again)
    assert grad.abs().max() > 0


def saved_bytes(objective: Objective, canvas: torch.Tensor) -> int:
    """Bytes the forward pass saves for the backward (each storage once)."""
    # Each saved tensor is held until the count is done: a storage freed during the forward
    # pass (a branch whose graph is dropped) could otherwise hand its address to a later
    # one, and the two would count as one.
    seen: dict[int, torch.Tensor] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen.setdefault(t.untyped_storage().data_ptr(), t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        objective(canvas.clone().requires_grad_(True))
    return sum(t.untyped_storage().nbytes() for t in seen.values())


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_recomputing_keeps_only_each_blocks_input(caffe, pooling: str) -> None:
    # What the network saves, less the blocks' inputs, is what recomputing frees (the block
    # run again in the backward pass saves its own share then, one block at a time).
    layers = {"style_layers": [0, 1, 2, 3, 4], "content_layers": [3]}
    cfg = tiny_config(size=128, precision="fp32", pooling=pooling, **layers)
    plain, recomputing, canvas = objective_pair(cfg)
    freed = saved_bytes(plain, canvas) - saved_bytes(recomputing, canvas)
    per_block, inputs = network_saves(
        Net("vgg16", frozenset(range(5)), pooling), *canvas.shape[-2:], 4
    )
    assert freed == sum(per_block) - inputs
    assert freed > 0.5 * sum(per_block)


PHOTO, PAINTING = (384, 288), (384, 240)  # tubingen.jpg, starry_night.jpg


def test_the_plan_recomputes_before_it_tiles() -> None:
    cpu = memory.Device("cpu", free=20 * GiB, used=40 * MiB)
    config = tiny_config(size=1024, precision="fp32")
    untiled = memory.plan(config.replace(max_memory="64GiB"), PHOTO, cpu, [PAINTING]).last
    recomputed = memory.estimate(
        memory.plan(config, PHOTO, cpu, [PAINTING]).context,
        untiled.height,
        untiled.width,
        None,
        recompute=True,
    )
    assert recomputed.peak < untiled.untiled.peak
    between = int((recomputed.peak + untiled.untiled.peak) / 2 / memory.HEADROOM)
    p = memory.plan(config.replace(max_memory=f"{between / MiB:.1f}MiB"), PHOTO, cpu, [PAINTING])
    assert p.last.fit is not None and p.last.fit.recompute and not p.last.tiled
    assert p.verdict() == "fits, recomputing blocks"
    assert p.peak == recomputed.peak and p.record()["recompute"] is True
    below = int(recomputed.peak / memory.HEADROOM) - 64 * MiB
    p = memory.plan(config.replace(max_memory=f"{below / MiB:.1f}MiB"), PHOTO, cpu, [PAINTING])
    assert p.last.tiled and not p.last.fit.recompute  # type: ignore[union-attr]
    assert p.record()["recompute"] is False


def test_a_run_between_the_two_peaks_recomputes_and_paints_the_same_picture(caffe) -> None:
    # The budget the engine's own plan (this process, this canvas) puts between the peak
    # recomputing blocks and the peak as it is: the run recomputes, says so, and ends on
    # the same pixels as the run with room to spare.
    cfg = tiny_config(size=512, iterations=2, precision="fp32")
    content, style, _ = load_inputs(cfg, CPU)
    h, w = content.shape[-2:]
    the_plan = plan_canvas(
        [cfg], device_state(CPU, True), h, w, [(style.shape[-1], style.shape[-2])], "vgg16"
    )
    low = memory.estimate(the_plan.context, h, w, None, recompute=True).peak
    high = the_plan.last.untiled.peak
    assert high - low > 80 * MiB  # room for this process's own memory to move
    budget = f"{(low + high) / 2 / memory.HEADROOM / MiB:.1f}MiB"
    finals, said = [], []
    # The budget's run first: a run leaves this process holding more (the allocator keeps
    # what it freed), which the next plan counts as used.
    for max_memory in (budget, "1TiB"):
        prepared = prepare(cfg.replace(max_memory=max_memory), lambda text, _: said.append(text))
        assert prepared.objective.recompute is (max_memory == budget)
        assert not prepared.objective.tile
        optimize(prepared.objective, prepared.canvases, [lambda event: None])
        finals.append(prepared.canvas.detach().clone())
    assert any(t.endswith("· fits, recomputing blocks") for t in said), said
    assert "recomputing each VGG block in the backward pass: the same gradient" in said
    assert torch.equal(finals[0], finals[1])
