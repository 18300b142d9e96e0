"""The analytic flop count of an iteration against PyTorch's own counter.

FlopCounterMode counts convolutions (forward and, by output_mask, backward: input
gradients only when the weights are frozen) and matmuls; it ignores elementwise ops,
as the analytic count does, so the two should agree on every kind of work.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import tiny_config
from torch.utils.flop_counter import FlopCounterMode

from nst_tui.engine import packed
from nst_tui.engine.accel import Accel
from nst_tui.engine.events import Progress
from nst_tui.engine.features import FeatureExtractor
from nst_tui.engine.flops import (
    IterationFlops,
    Throughput,
    achieved_tflops,
    device_peak_tflops,
    iteration_flops,
    objective_flops,
    peak_tflops,
)
from nst_tui.engine.losses import style_loss
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare
from nst_tui.engine.scales import optimize_scales, scale_configs

TOLERANCE = 0.02


@pytest.fixture(autouse=True)
def _plain_convs(monkeypatch: pytest.MonkeyPatch) -> None:
    # FlopCounterMode counts aten's convolutions; the CPU's packed convs (engine/packed.py)
    # are oneDNN ops it does not know. The same network unpacked does the same work.
    monkeypatch.setattr(packed, "available", lambda dtype=torch.float32: False)


def counted(step: Callable[[], None]) -> dict[str, int]:
    """FlopCounterMode's totals by op ("convolution", "convolution_backward", "bmm")."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return {
        str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts()["Global"].items()
    }


def assert_agrees(flops: IterationFlops, measured: dict[str, int]) -> None:
    assert set(measured) <= {"convolution", "convolution_backward", "bmm"}, measured
    assert flops.conv_forward == pytest.approx(measured.get("convolution", 0), rel=TOLERANCE)
    assert flops.conv_backward == pytest.approx(
        measured.get("convolution_backward", 0), rel=TOLERANCE
    )
    assert flops.gram == pytest.approx(measured.get("bmm", 0), rel=TOLERANCE)
    assert flops.total == pytest.approx(sum(measured.values()), rel=TOLERANCE)


def test_one_tap_by_hand(caffe) -> None:
    ext = FeatureExtractor(caffe, [0], "conv", "max")
    conv1_1 = 2 * 3 * 64 * 9 * 32 * 32
    assert iteration_flops(ext, 32, 32, []) == IterationFlops(conv1_1, conv1_1, 0)
    gram = 6 * 64 * 64 * 32 * 32  # forward bmm 2*C*C*HW, backward two of them
    flops = iteration_flops(ext, 32, 32, [0])
    assert flops == IterationFlops(conv1_1, conv1_1, gram)

    canvas = torch.rand(1, 3, 32, 32, requires_grad=True)
    target = torch.zeros(1, 64, 64)

    def step() -> None:
        style_loss(ext(canvas)[0], target).sum().backward()

    measured = counted(step)
    assert_agrees(flops, measured)
    # Frozen weights: the backward conv is the input gradient alone, the size of the forward.
    assert measured["convolution_backward"] == conv1_1
    assert canvas.grad is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"size": 64},  # 64x48, conv taps, style 0..4, content 3
        {"size": 64, "layer_type": "relu"},
        {"size": 64, "content_layers": (2,), "style_layers": (1, 2)},  # deepest tap: block 2
        {"size": 64, "pooling": "avg", "style_layers": (0, 2)},
        {"size": 64, "mode": "content"},  # no style layer: no Gram
    ],
    ids=["conv-taps", "relu-taps", "deepest-block-2", "avg-pool", "content-only"],
)
def test_objective_iteration_matches_flop_counter(changes) -> None:
    prepared = prepare(tiny_config(**changes))
    objective, canvas = prepared.objective, prepared.canvas
    assert canvas.shape == (1, 3, 48, 64)

    def step() -> None:
        objective(canvas)[0].sum().backward()

    assert_agrees(objective_flops(objective, canvas), counted(step))


def test_batch_of_three_scales_by_three() -> None:
    prepared = prepare(tiny_config(size=64))
    objective = prepared.objective
    canvas = prepared.canvas.detach().repeat(3, 1, 1, 1).requires_grad_(True)

    def step() -> None:
        objective(canvas)[0].sum().backward()

    flops = objective_flops(objective, canvas)
    one = iteration_flops(objective.extractor, 48, 64, objective.style_layers)
    assert flops.total == 3 * one.total
    assert_agrees(flops, counted(step))


def test_batch_objective_computes_each_gram_once_for_all_cells() -> None:
    cfgs = [
        tiny_config(size=64, style_layers=(0, 1)),
        tiny_config(size=64, style_layers=(1, 2), layer_type="relu"),
        tiny_config(size=64, mode="content", content_layers=(3,)),
    ]
    prepared = prepare(cfgs)
    objective, extractor = prepared.objective, prepared.objective.extractor
    canvas = torch.cat([c.detach() for c in prepared.canvases]).requires_grad_(True)

    def step() -> None:
        objective(canvas)[:, 0].sum().backward()

    flops = iteration_flops(extractor, 48, 64, [0, 1, 2], batch=3)  # the cells' union
    assert_agrees(flops, counted(step))


def test_style_layer_must_be_a_tap(caffe) -> None:
    ext = FeatureExtractor(caffe, [1], "conv", "max")
    with pytest.raises(ValueError, match="not taps"):
        iteration_flops(ext, 32, 32, [0])


def test_achieved_and_peak_tflops() -> None:
    assert achieved_tflops(IterationFlops(1e12, 1e12, 0.5e12), 2.0) == pytest.approx(5.0)
    assert peak_tflops("NVIDIA H200", "fp32") == 67.0
    assert peak_tflops("NVIDIA H200", "tf32") == 494.7
    assert peak_tflops("NVIDIA H200", "BF16") == 989.5
    assert peak_tflops("NVIDIA H200 NVL", "fp32") == 60.0
    assert peak_tflops("NVIDIA RTX A4000", "fp32") == 19.2
    assert peak_tflops("NVIDIA RTX A4000 Laptop GPU", "fp32") is None
    assert peak_tflops("NVIDIA H200", "fp64") is None
    assert peak_tflops("cpu", "fp32") is None


def test_progress_reports_the_counted_work_per_second() -> None:
    """Every Progress of a single-scale run carries TFLOP/s = counted flops x its it/s; a
    CPU has no datasheet peak, so no fraction of one."""
    prepared = prepare(tiny_config(size=64, iterations=10))
    per_iteration = objective_flops(prepared.objective, prepared.canvas).total
    events: list[Progress] = []
    optimize(
        prepared.objective,
        prepared.canvases,
        [lambda e: events.append(e) if isinstance(e, Progress) else None],
    )
    assert [e.iteration for e in events] == [5, 10]
    for e in events:
        assert e.tflop_s == pytest.approx(per_iteration * e.it_per_s / 1e12)
        assert e.of_peak is None


def test_multiscale_progress_has_no_single_work_figure() -> None:
    """A multi-scale run's iterations differ in size: its it/s spans them, so no TFLOP/s."""
    cfg = tiny_config(size=64, scales=[32, 64], iterations=5)
    events: list[Progress] = []
    optimize_scales(
        prepare(scale_configs(cfg)[0]),
        cfg,
        lambda e: events.append(e) if isinstance(e, Progress) else None,
    )
    assert events and all(e.tflop_s is None and e.of_peak is None for e in events)


def test_throughput_divides_by_the_peak_of_the_arithmetic_in_use() -> None:
    flops = IterationFlops(1e12, 1e12, 0.0)
    assert Throughput(flops, 500.0).at(10.0) == pytest.approx((20.0, 0.04))
    assert Throughput(flops, None).at(10.0) == (pytest.approx(20.0), None)
    assert device_peak_tflops(torch.device("cpu"), "fp32") is None
    assert Accel().arithmetic == "fp32"
    assert Accel(tf32=True, channels_last=True).arithmetic == "tf32"
    assert Accel(tf32=True, bf16=True).arithmetic == "bf16"


def test_a_cuda_device_is_looked_up_by_its_name(monkeypatch) -> None:
    # No GPU needed: only the name lookup is CUDA's.
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_peak_tflops(torch.device("cuda"), "tf32") == 494.7
    assert device_peak_tflops(torch.device("cuda:0"), "bf16") == 989.5
