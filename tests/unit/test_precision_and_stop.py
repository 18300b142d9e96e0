"""bf16 and `precision = "auto"`, packed convs, and the stop_change rule.

- Packed convs (engine/packed.py) give conv2d's output and input gradient.
- The bf16 network's loss and canvas gradient stay close to fp32's: loss within 0.5%,
  gradient cosine above 0.995 and relative L2 error under 10% (measured: 0.02-0.12% on
  the loss, cosine 0.998-0.9996, L2 error 3-6% at 64 and 128 px, study and default
  weights; bf16 keeps 8 bits of mantissa, about 0.4% per rounding, through 13 convs).
- "auto" picks bf16 only where the device has fast bf16: a CPU with AMX, a GPU of
  compute capability 8.0 or more (both simulated here by replacing the probe).
- The stop rule stops a run whose loss has stopped improving, whatever its step-to-step
  bounce, and lets one that still improves go on; in a batch a cell that stops leaves
  the others running; run.json says where and why.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import run_single, tiny_config
from torch import nn

from nst_tui import presets
from nst_tui.config import Config
from nst_tui.engine import accel as acc
from nst_tui.engine import packed
from nst_tui.engine.converge import Gains
from nst_tui.engine.events import Finished, Progress
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare

needs_packing = pytest.mark.skipif(not packed.available(), reason="oneDNN's packing ops absent")


# ---- packed convs ----------------------------------------------------------------------


@needs_packing
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_convs_give_conv2d_output_and_input_gradient(dtype) -> None:
    if not packed.available(dtype):
        pytest.skip(f"no packed {dtype} convs here")
    gen = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(16, 32, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.1)
    conv = conv.to(dtype).requires_grad_(False)
    x = torch.randn(2, 16, 11, 13, generator=gen).to(dtype)
    a = x.clone().requires_grad_(True)
    b = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    plain, out = F.conv2d(a, conv.weight, conv.bias, padding=1), packed.ConvPacks(conv)(b)
    grad = torch.randn(plain.shape, generator=gen).to(dtype)
    plain.backward(grad)
    out.backward(grad)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(out.float(), plain.float(), **tol)
    torch.testing.assert_close(b.grad.float(), a.grad.float(), **tol)
    assert out.is_contiguous(memory_format=torch.channels_last)


@needs_packing
def test_packs_follow_weights_written_in_place() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1).requires_grad_(False)
    packs = packed.ConvPacks(conv)
    x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    before = packs(x)
    with torch.no_grad():
        conv.weight.mul_(2)
        conv.bias.zero_()
    torch.testing.assert_close(packs(x), F.conv2d(x, conv.weight, conv.bias, padding=1))
    assert not torch.allclose(before, packs(x))


# ---- bf16 against fp32 -------------------------------------------------------------------


def loss_and_gradient(cfg: Config, canvas: torch.Tensor) -> tuple[float, torch.Tensor]:
    objective = prepare(cfg).objective
    canvas = canvas.clone().requires_grad_(True)
    total = objective(canvas)[0, 0]
    total.backward()
    assert canvas.grad is not None and canvas.grad.dtype == torch.float32
    return float(total.detach()), canvas.grad


@pytest.mark.parametrize("recipe", ["study", "default"])
def test_bf16_loss_and_gradient_are_close_to_fp32(recipe) -> None:
    base = tiny_config(size=64)
    if recipe == "default":
        fields = presets.load("default").config.to_dict()
        keep = ("content_image", "style_image", "size", "device", "backbone")
        base = Config.from_dict({**fields, **{k: getattr(base, k) for k in keep}})
    canvas = prepare(base.replace(precision="fp32")).canvas.detach()
    loss32, grad32 = loss_and_gradient(base.replace(precision="fp32"), canvas)
    loss16, grad16 = loss_and_gradient(base.replace(precision="bf16"), canvas)
    assert loss16 == pytest.approx(loss32, rel=5e-3)
    cosine = F.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0)
    assert cosine > 0.995
    assert (grad16 - grad32).norm() / grad32.norm() < 0.1


# ---- precision = "auto" -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "vendor", "bf16", "why"),
    [
        (frozenset(), "GenuineIntel", False, "no bf16 units"),
        (frozenset(), "AuthenticAMD", False, "no bf16 units"),
        (frozenset({acc.AVX512_BF16}), "GenuineIntel", False, "no AMX"),
        (frozenset({acc.AVX512_BF16}), "AuthenticAMD", True, "AMD CPU has AVX512-BF16"),
        (frozenset({acc.AVX512_BF16, acc.AMX_BF16}), "GenuineIntel", True, "AMX"),
    ],
    ids=["no-bf16-units", "amd-no-bf16-units", "intel-avx512-bf16-only", "amd-zen4", "amx"],
)
def test_auto_picks_bf16_where_it_measured_faster(monkeypatch, units, vendor, bf16, why) -> None:
    monkeypatch.setattr(acc, "cpu_bf16_units", lambda: units)
    monkeypatch.setattr(acc, "cpu_vendor", lambda: vendor)
    chosen = acc.choose(tiny_config(precision="auto"), torch.device("cpu"))
    assert chosen.bf16 is bf16 and chosen.precision == ("bf16" if bf16 else "fp32")
    assert chosen.precision_reason.startswith("auto: ") and why in chosen.precision_reason
    # Asked for by name, each precision is what it says, on any CPU.
    for name in ("fp32", "bf16"):
        forced = acc.choose(tiny_config(precision=name), torch.device("cpu"))
        assert forced.precision == name and "in the config" in forced.precision_reason


def test_an_auto_run_without_bf16_units_records_fp32_and_why(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(acc, "cpu_bf16_units", lambda: frozenset())
    result = run_single(tiny_config(precision="auto", iterations=2, sav_freq=1), out_root=tmp_path)
    record = json.loads((result.folder / "run.json").read_text())
    assert record["precision"] == "fp32"
    assert record["precision_reason"] == (
        "auto: this CPU has no bf16 units (neither amx_bf16 nor avx512_bf16)"
    )
    assert "bf16" not in record["accel"]


@pytest.mark.parametrize(("capability", "bf16"), [((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_on_cuda_wants_compute_capability_8(monkeypatch, capability, bf16) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    precision, why = acc.resolve_precision("auto", torch.device("cuda"))
    assert precision == ("bf16" if bf16 else "fp32")
    assert f"compute capability {capability[0]}.{capability[1]}" in why


def test_cpu_bf16_units_are_read_from_cpuinfo_flags(monkeypatch, tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor : 0\nvendor_id : AuthenticAMD\nflags : fpu sse avx512f avx512_bf16 amx_tile\n"
    )
    monkeypatch.setattr(acc, "CPUINFO", info)
    acc.cpu_bf16_units.cache_clear()
    acc.cpu_vendor.cache_clear()
    try:
        assert acc.cpu_bf16_units() == {acc.AVX512_BF16}
        assert acc.cpu_vendor() == "AuthenticAMD"
    finally:
        acc.cpu_bf16_units.cache_clear()
        acc.cpu_vendor.cache_clear()


def test_the_study_presets_pin_fp32_and_default_is_auto() -> None:
    assert Config().precision == "auto"
    assert presets.load("default").config.precision == "auto"
    for name in ("study", "noise-adam", "noise-lbfgs", "content-adam", "sweep-content-layers-adam"):
        assert presets.load(name).config.precision == "fp32", name


# ---- the stop rule -------------------------------------------------------------------------


def window_gains(losses: list[float], window: int) -> list[float]:
    gains = Gains(window, torch.device("cpu"))
    out = []
    for k, loss in enumerate(losses, 1):
        gains.add(torch.tensor(loss))
        if k % window == 0 and (gain := gains.close()) is not None:
            out.append(float(gain))
    return out


def test_window_means_see_through_the_bounce_but_not_progress() -> None:
    gen = torch.Generator().manual_seed(0)

    def bounce() -> float:  # Adam at a fixed lr: the loss bounces by +-5% step to step
        return 1 + 0.1 * (float(torch.rand((), generator=gen)) - 0.5)

    plateau = [6.2 * bounce() for _ in range(400)]
    improving = [6.2 * 0.9995**k * bounce() for k in range(400)]  # 2.5% per 50 steps
    assert max(abs(g) for g in window_gains(plateau, 50)) < 0.01
    assert min(window_gains(improving, 50)) > 0.01


def test_a_run_that_stopped_improving_stops_and_says_where(tmp_path) -> None:
    # lr so small that no step changes the loss: converged from the start.
    cfg = tiny_config(lr=1e-6, iterations=100, sav_freq=7, stop_change=0.01, stop_window=10)
    events: list[object] = []
    result = run_single(cfg, out_root=tmp_path, listeners=[events.append])
    record = json.loads((result.folder / "run.json").read_text())
    assert record["status"] == "finished" and record["iterations_done"] == 20
    assert record["stopped_by"] == "convergence"
    assert record["reason"].startswith("converged at iteration 20 of 100: the mean loss of ")
    assert (
        "iterations 11-20 was" in record["reason"] and "that of iterations 1-10" in record["reason"]
    )
    assert record["last_gain"] < 0.01
    # The last row and frame are where it stopped: losses.csv, the GIF and run.json agree.
    rows = (result.folder / "losses.csv").read_text().splitlines()
    assert rows[-1].startswith("20,")


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_the_rule_stops_a_converged_run_and_not_a_moving_one(optimizer) -> None:
    lr = {"adam": 0.06, "lbfgs": 1.0}[optimizer]
    common = {"optimizer": optimizer, "iterations": 40, "sav_freq": 5, "stop_window": 10}
    # From noise, the loss falls by far more than 1% per window over the first 40 steps.
    moving = tiny_config(lr=lr, stop_change=0.01, **common)
    still = tiny_config(lr=lr * 1e-6, stop_change=0.01, **common)
    ends = {}
    for name, cfg in (("moving", moving), ("still", still)):
        prepared = prepare(cfg)
        events: list[object] = []
        ends[name] = optimize(prepared.objective, prepared.canvases, [events.append])[0]
        gains = [e.gain for e in events if isinstance(e, Progress) and e.gain is not None]
        assert gains, "the rule's measure is reported with the progress"
    assert not ends["moving"].converged and ends["moving"].iterations_done == 40
    assert ends["moving"].gain is not None and ends["moving"].gain > 0.01
    assert ends["still"].converged and ends["still"].iterations_done == 20
    assert ends["still"].status == "finished"
    assert "converged at iteration 20" in ends["still"].reason


def test_off_by_default_and_the_cap_still_holds() -> None:
    assert Config().stop_change == 0.0
    prepared = prepare(tiny_config(lr=1e-6, iterations=30, stop_window=10))
    end = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    assert end.iterations_done == 30 and not end.converged and end.gain is None


def test_a_batched_cell_that_converges_leaves_the_others_running() -> None:
    rule = {"iterations": 40, "sav_freq": 5, "stop_change": 0.01, "stop_window": 10}
    cfgs = [tiny_config(lr=1e-6, **rule), tiny_config(**rule), tiny_config(lr=1e-6, **rule)]
    prepared = prepare(cfgs)
    ends: dict[int, Finished] = {}
    lasts: dict[int, int] = {}

    def emit(k: int):
        def send(event: object) -> None:
            if isinstance(event, Finished):
                ends[k] = event
            elif isinstance(event, Progress):
                lasts[k] = event.iteration

        return send

    optimize(prepared.objective, prepared.canvases, [emit(k) for k in range(3)])
    assert [ends[k].iterations_done for k in range(3)] == [20, 40, 20]
    assert [ends[k].converged for k in range(3)] == [True, False, True]
    assert lasts == {0: 20, 1: 40, 2: 20}


def test_the_default_preset_stops_when_still_and_the_study_presets_do_not() -> None:
    default = presets.load("default").config
    assert default.stop_change > 0 and default.iterations == 2500
    for name in ("study", "noise-adam", "noise-lbfgs", "sweep-content-layers-adam"):
        assert presets.load(name).config.stop_change == 0.0, name


def test_the_sweep_count_ends_at_its_total_when_cells_stop_early() -> None:
    import numpy as np

    from nst_tui.job.events import CellEvent, IterationCount
    from nst_tui.job.plan import expand

    count = IterationCount(expand(tiny_config(iterations=40), {"lr": [1e-6, 0.06]}))
    assert count.total == 80
    pixel = np.zeros((1, 1, 3), np.uint8)
    count.update(CellEvent(0, Finished("finished", "", 20, 1.0, 20.0, {}, pixel, converged=True)))
    count.update(CellEvent(1, Finished("finished", "", 40, 1.0, 40.0, {}, pixel)))
    assert count.completed == count.total == 60
