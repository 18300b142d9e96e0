"""The CUDA path itself: run only where a GPU is present (skipped on CPU boxes).

On a GPU box: `python -m pytest -q tests/unit/test_cuda.py`. benchmarks/gpu_check.sh
runs it before the speed measurements.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config

from nst_tui.engine.events import Status
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_run(**changes: object):
    cfg = tiny_config(device="cuda", size=64, iterations=40, sav_freq=5, **changes)
    prepared = prepare(cfg)
    events: list = []
    finished = optimize(prepared.objective, prepared.canvases, [events.append])[0]
    return finished, events


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
        assert cell_result.losses["total"] == pytest.approx(alone.losses["total"], rel=5e-3)


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
