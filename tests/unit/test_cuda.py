"""The CUDA path itself: run only where a GPU is present (skipped on CPU boxes).

On a GPU box: `python -m pytest -q tests/unit/test_cuda.py`. benchmarks/gpu_check.sh
runs it before the speed measurements.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_config

from nst_tui.engine import accel as acc
from nst_tui.engine.events import Finished, Progress, Status
from nst_tui.engine.graphs import WARM_UP_STEPS, StepRunner, capture_graph
from nst_tui.engine.losses import W2Target, w2_loss
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare
from nst_tui.engine.scales import optimize_scales, scale_configs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_run(**changes: object):
    cfg = tiny_config(device="cuda", size=64, iterations=40, sav_freq=5, **changes)
    prepared = prepare(cfg)
    events: list = []
    finished = optimize(prepared.objective, prepared.canvases, [events.append])[0]
    return finished, events


# ---- issue 30: what would break on the first GPU run (first, so a short lease sees them) --


def run_cell(cfg) -> list:
    """One cell through the job's lifecycle (run_batch, release_memory included)."""
    from nst_tui.job.events import CellEvent
    from nst_tui.job.lifecycle import run_batch
    from nst_tui.job.plan import Batch, Cell

    events: list = []
    cell = Cell(0, 0, 0, "cell", {}, cfg)
    run_batch(0, Batch((0,), False), [cell], events.append, threading.Event())
    return [e.event for e in events if isinstance(e, CellEvent)]


def test_a_w2_run_with_graphs_leaves_cuda_as_it_found_it() -> None:
    cfg = tiny_config(device="cuda", size=64, iterations=20, sav_freq=5, style_stats="w2")
    assert cfg.cuda_graphs
    run_cell(cfg)  # what stays loaded: weights, cuBLAS and cuDNN workspaces
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_reserved()
    events = run_cell(cfg)
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    torch.cuda.empty_cache()  # an internal assert where a capture was left underway
    assert torch.cuda.memory_reserved() <= baseline
    end = events[-1]
    assert isinstance(end, Finished) and end.status == "finished", end.reason
    assert not [e for e in events if isinstance(e, Status) and "capture failed" in e.message]
    style = [v for e in events if isinstance(e, Progress) for k, v in e.losses.items()
             if k.startswith("style")]  # fmt: skip
    assert style and min(style) >= 0  # w2 with TF32 on (for convolutions)


def test_a_capture_a_sync_breaks_leaves_cuda_as_it_found_it() -> None:
    x = torch.arange(4096.0, device="cuda")

    def step() -> list[torch.Tensor]:
        y = x * 2
        if y.sum().item() < 0:  # a host read, as eigvalsh's: the capture breaks here
            y = -y
        return [y]

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_reserved()
    notes: list[str] = []
    runner = StepRunner(step, torch.device("cuda"), True, notes.append)
    outs = [runner()[0].clone() for _ in range(WARM_UP_STEPS + 3)]
    assert runner.mode == "plain" and len(notes) == 1 and "capture failed" in notes[0]
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    assert all(torch.equal(o, x * 2) for o in outs)
    del runner, outs
    torch.cuda.empty_cache()
    assert torch.cuda.memory_reserved() <= baseline
    graph, (out,) = capture_graph(lambda: [x + 1])  # later captures still work
    graph.replay()  # type: ignore[attr-defined]
    torch.cuda.synchronize()
    assert torch.equal(out, x + 1)


@pytest.mark.parametrize(
    "changes", [{}, {"histogram": 1.0}, {"style_stats": "w2"}], ids=["gram", "histogram", "w2"]
)
def test_only_w2_steps_wait_for_the_device(changes: dict) -> None:
    # What accel.step_waits claims, on the device: only the steps it names sync.
    cfg = tiny_config(device="cuda", size=64, **changes)
    p = prepare(cfg)

    def step() -> None:
        p.canvas.grad = None
        p.objective(p.canvas)[:, 0].sum().backward()

    step()  # lazy initialisation (cuDNN plans, autograd's threads) may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(caught) == bool(acc.step_waits(cfg)), [str(w.message) for w in caught]


def test_a_batch_gives_its_graph_back_when_a_cell_ends(monkeypatch) -> None:
    cfgs = [
        tiny_config(device="cuda", size=128, iterations=n, sav_freq=5, content_layers=[i])
        for n, i in ((20, 1), (40, 3))
    ]
    p = prepare(cfgs)
    # cuDNN would time the new batch shape's algorithms in workspaces of their own when
    # the batch shrinks: off, so that only the graph's memory is compared.
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    before: list[int] = []
    after: list[int] = []

    def first(event: object) -> None:  # its last report lands before the batch shrinks
        if isinstance(event, Progress):
            before.append(torch.cuda.memory_reserved())

    def second(event: object) -> None:
        if isinstance(event, Progress) and event.iteration >= 25:  # reports land late
            after.append(torch.cuda.memory_reserved())

    ends = optimize(p.objective, p.canvases, [first, second])
    assert [e.status for e in ends] == ["finished", "finished"]
    assert after and max(after) <= before[-1], (before[-1], after)


def test_a_multi_scale_run_gives_each_scale_back(monkeypatch) -> None:
    from nst_tui.engine import scales

    cfg = tiny_config(device="cuda", size=192, scales=[128, 160, 192], iterations=10)

    def run() -> Finished:
        return optimize_scales(prepare(scale_configs(cfg)[0]), cfg, lambda e: None)

    run()  # what stays loaded: cuBLAS and cuDNN workspaces
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_reserved()
    at_switch: list[int] = []
    real = scales.prepare

    def prepare_next(*args, **kwargs):  # called once the coarser scale is gone
        at_switch.append(torch.cuda.memory_reserved())
        return real(*args, **kwargs)

    monkeypatch.setattr(scales, "prepare", prepare_next)
    assert run().status == "finished"
    # Held over: the canvas (and a segment's rounding); the coarser scale's network,
    # targets, Adam state and graph pool are gone.
    assert len(at_switch) == 2 and max(at_switch) <= baseline + 4 * 2**20, (baseline, at_switch)


def test_w2_of_a_style_with_itself_is_not_negative_with_tf32_on() -> None:
    acc.apply_backend_flags(acc.Accel(tf32=True))
    gen = torch.Generator(device="cuda").manual_seed(0)
    f = (torch.randn(1, 256, 32, 32, device="cuda", generator=gen) + 1).relu()
    t = W2Target.of(f)
    d = float(w2_loss(f, t.mean, t.cov_sqrt, t.cov_trace))
    # Exact arithmetic gives 8.7e-4 of the energy here (the eigenvalue floor's bias, on
    # a CPU); TF32 matmuls would add rounding of that order, of either sign.
    assert 0 <= d <= 2e-3 * t.energy()


# ---- the rest of the CUDA path ---------------------------------------------------------


def test_graphed_adam_matches_the_plain_step() -> None:
    graphed, events = cuda_run()
    plain, _ = cuda_run(cuda_graphs=False)
    assert graphed.status == plain.status == "finished"
    assert not [e for e in events if isinstance(e, Status) and "capture failed" in e.message]
    for name, value in plain.losses.items():
        assert graphed.losses[name] == pytest.approx(value, rel=2e-3), name
    diff = np.abs(graphed.image.astype(int) - plain.image.astype(int)).mean()
    assert diff < 1.0


def test_bf16_on_cuda_finishes_close_to_fp32() -> None:
    bf16, _ = cuda_run(precision="bf16")
    fp32, _ = cuda_run()
    assert bf16.status == "finished"
    assert bf16.losses["total"] == pytest.approx(fp32.losses["total"], rel=0.2)


def test_batched_sweep_cells_with_graphs_match_their_single_runs() -> None:
    cfgs = [
        tiny_config(device="cuda", size=64, iterations=20, sav_freq=5, content_layers=[i])
        for i in (1, 3)
    ]
    p = prepare(cfgs)
    batched = optimize(p.objective, p.canvases, [lambda e: None] * len(cfgs))
    for cfg, cell_result in zip(cfgs, batched, strict=True):
        p = prepare(cfg)
        alone = optimize(p.objective, p.canvases, [lambda e: None])[0]
        # Not bit for bit: a batch of 2 and a batch of 1 are different shapes, for which
        # cuDNN (benchmark on) may pick different algorithms, each summing in its own
        # order and rounding products to TF32's 10-bit mantissa (about 5e-4 each). Over 20
        # Adam steps that moves a loss by about 1e-3 of itself (an estimate, not yet a
        # measurement: the message prints it); a cell that read another's targets would be
        # off by far more than 5e-3.
        rel = abs(cell_result.losses["total"] / alone.losses["total"] - 1)
        assert rel <= 5e-3, f"batched vs alone: {rel:.2e} of the loss"


def test_a_1024px_reconstruct_runs() -> None:
    cfg = tiny_config(device="cuda", size=1024, iterations=10, sav_freq=5)
    prepared = prepare(cfg)
    finished = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    assert finished.status == "finished" and finished.image.shape[1] == 1024


def sync_warnings(iterations: int, **changes: object) -> int:
    """How many host synchronisations PyTorch reports for a whole run."""
    import warnings

    cfg = tiny_config(device="cuda", size=64, iterations=iterations, sav_freq=10, **changes)
    prepared = prepare(cfg)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return len(caught)


@pytest.mark.parametrize("changes", [{}, {"cuda_graphs": False}, {"original_colors": True}])
def test_the_adam_loop_never_waits_for_the_device(changes: dict) -> None:
    # Syncs at the start and the end (the final image) are fine; none may come per
    # iteration or per report: a run 4x longer reports no more of them.
    assert sync_warnings(80, **changes) == sync_warnings(20, **changes)
