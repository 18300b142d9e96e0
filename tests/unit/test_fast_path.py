"""The GPU speed path, as far as a CPU can check it.

- The outbox hands reports out in order, late when the device is late, and the
  loop's events are the same whether reports land at once or steps later.
- A CUDA graph capture that fails falls back to the plain step, says so, and
  the run is the same; warm-up and replay are driven by the runner.
- Accel picks nothing GPU-only on a CPU; bf16 runs the network in bfloat16 and
  the losses in float32.
- channels-last features give the same Gram.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from conftest import tiny_config

from nst_tui.engine import accel as acc
from nst_tui.engine import optimize as opt_mod
from nst_tui.engine import packed
from nst_tui.engine.events import Finished, Frame, Progress
from nst_tui.engine.graphs import WARM_UP_STEPS, StepRunner
from nst_tui.engine.losses import gram
from nst_tui.engine.optimize import optimize
from nst_tui.engine.outbox import Outbox
from nst_tui.engine.prepare import prepare


class LateMarker:
    """A CUDA event stand-in that fires only after `delay` queries (or a wait)."""

    def __init__(self, delay: int) -> None:
        self.left = delay
        self.waited = False

    def record(self) -> None:
        pass

    def query(self) -> bool:
        self.left -= 1
        return self.left < 0

    def synchronize(self) -> None:
        self.waited = True
        self.left = -1


def image(v: int) -> torch.Tensor:
    return torch.full((2, 2, 3), v, dtype=torch.uint8)


def test_outbox_delivers_in_order_once_copies_land() -> None:
    markers: list[LateMarker] = []

    def make() -> LateMarker:
        markers.append(LateMarker(delay=2))
        return markers[-1]

    box = Outbox(torch.device("cpu"), depth=3, marker=make)
    values = torch.tensor([1.0, 2.0])
    box.put(10, values, image(1))
    values.add_(100)  # the source changes after put: the report keeps what it was
    assert box.ready() == []  # not landed yet
    box.put(20, values, image(2))
    assert box.ready() == []
    first = box.ready()  # the first marker has fired; the second not yet
    assert [r.iteration for r in first] == [10]
    assert first[0].values == [1.0, 2.0] and first[0].image[0, 0, 0] == 1
    rest = box.drain()  # waits for the rest
    assert [r.iteration for r in rest] == [20] and rest[0].values == [101.0, 102.0]
    assert not box


def test_outbox_waits_for_the_oldest_past_its_depth() -> None:
    markers: list[LateMarker] = []

    def make() -> LateMarker:
        markers.append(LateMarker(delay=1000))
        return markers[-1]

    box = Outbox(torch.device("cpu"), depth=2, marker=make)
    for i in range(3):
        box.put(i, torch.zeros(1), image(i))
    assert markers[0].waited and not markers[1].waited
    assert [r.iteration for r in box.ready()] == [0]


def events_of(cfg, marker=None) -> list:
    prepared = prepare(cfg)
    events: list = []
    if marker is not None:
        original = opt_mod.Outbox

        class SlowOutbox(original):  # type: ignore[misc, valid-type]
            def __init__(self, device: torch.device) -> None:
                super().__init__(device, marker=marker)

        opt_mod.Outbox = SlowOutbox  # type: ignore[misc]
    try:
        optimize(prepared.objective, prepared.canvases, [events.append])[0]
    finally:
        if marker is not None:
            opt_mod.Outbox = original  # type: ignore[misc]
    return events


def summary(events: list) -> list:
    out = []
    for e in events:
        if isinstance(e, Progress):
            out.append(("progress", e.iteration, e.losses))
        elif isinstance(e, Frame):
            out.append(("frame", e.iteration, e.image.tobytes()))
        elif isinstance(e, Finished):
            out.append(("finished", e.status, e.iterations_done, e.losses, e.image.tobytes()))
    return out


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_late_reports_give_the_same_events(optimizer: str) -> None:
    cfg = tiny_config(iterations=12, sav_freq=3, optimizer=optimizer, lr=0.06)
    now = summary(events_of(cfg))
    late = summary(events_of(cfg, marker=lambda: LateMarker(delay=3)))
    assert late == now
    assert [e[1] for e in now if e[0] == "progress"] == [3, 6, 9, 12]


def test_a_late_divergence_still_fails_the_run_with_the_last_good_frame(monkeypatch) -> None:
    from nst_tui.engine.objective import Objective

    original = Objective.forward
    calls = {"n": 0}

    def diverging(self, canvas, index=None):  # NaN from the 7th step on
        calls["n"] += 1
        terms = original(self, canvas, index)
        return terms * float("nan") if calls["n"] >= 7 else terms

    monkeypatch.setattr(Objective, "forward", diverging)
    cfg = tiny_config(iterations=30, sav_freq=2)
    events = events_of(cfg, marker=lambda: LateMarker(delay=4))
    end = events[-1]
    assert isinstance(end, Finished) and end.status == "failed"
    assert "diverged at iteration" in end.reason
    frames = [e for e in events if isinstance(e, Frame)]
    if frames:
        assert np.array_equal(end.image, frames[-1].image)
    progress = [e for e in events if isinstance(e, Progress)]
    assert all(np.isfinite(list(e.losses.values())).all() for e in progress)


def test_a_cancel_keeps_the_reports_already_made() -> None:
    cfg = tiny_config(iterations=50, sav_freq=2)
    prepared = prepare(cfg)
    cancel = threading.Event()
    events: list = []

    def emit(event: object) -> None:
        events.append(event)
        if isinstance(event, Progress) and event.iteration == 4:
            cancel.set()

    optimize(prepared.objective, prepared.canvases, [emit], cancel)[0]
    end = events[-1]
    assert end.status == "cancelled"
    iterations = [e.iteration for e in events if isinstance(e, Progress)]
    assert iterations == list(range(2, iterations[-1] + 1, 2)) and iterations[-1] >= 4


# ---- the step runner -------------------------------------------------------------------


def test_on_a_cpu_the_step_is_always_plain() -> None:
    calls = []
    runner = StepRunner(lambda: calls.append(1) or [], torch.device("cpu"), enabled=True)
    for _ in range(WARM_UP_STEPS + 3):
        runner()
    assert len(calls) == WARM_UP_STEPS + 3 and runner.mode == "plain"


class FakeGraph:
    def __init__(self, step) -> None:
        self.step = step
        self.replays = 0

    def replay(self) -> None:
        self.replays += 1
        self.step()


def runner_on_fake_cuda(step, capture, notes) -> StepRunner:
    # Only the runner's own bookkeeping runs: warm-up streams are CUDA's, so skip them.
    runner = StepRunner(step, torch.device("cpu"), enabled=True, note=notes.append, capture=capture)
    runner.graphed = True
    runner._warm_up = step  # type: ignore[method-assign]
    return runner


def test_a_captured_step_is_replayed_and_its_outputs_returned() -> None:
    calls = []
    out = [torch.zeros(1)]

    def step():
        calls.append(1)
        return out

    graphs = []

    def capture(s):
        graphs.append(FakeGraph(s))
        return graphs[0], out

    notes: list[str] = []
    runner = runner_on_fake_cuda(step, capture, notes)
    results = [runner() for _ in range(WARM_UP_STEPS + 4)]
    assert runner.mode == "cuda graph" and graphs[0].replays == 4
    assert len(calls) == WARM_UP_STEPS + 4  # warm-up steps, then one step per replay
    assert all(r is out for r in results) and notes == []


def test_a_failed_capture_falls_back_to_plain_steps_and_says_so() -> None:
    calls = []

    def step():
        calls.append(1)
        return []

    def capture(s):
        raise RuntimeError("operation not permitted when stream is capturing")

    notes: list[str] = []
    runner = runner_on_fake_cuda(step, capture, notes)
    for _ in range(WARM_UP_STEPS + 4):
        runner()
    assert runner.mode == "plain" and len(calls) == WARM_UP_STEPS + 4  # no step was lost
    assert len(notes) == 1 and "capture failed" in notes[0] and "not permitted" in notes[0]


def test_a_run_whose_capture_fails_matches_a_plain_run(monkeypatch) -> None:
    cfg = tiny_config(iterations=8, sav_freq=4)
    plain = summary(events_of(cfg))

    def fake_cuda_runner(step, device, enabled, note=lambda t: None, capture=None):
        def fail(s):
            raise RuntimeError("no graphs here")

        return runner_on_fake_cuda(step, fail, notes)

    notes: list[str] = []
    monkeypatch.setattr(opt_mod, "StepRunner", fake_cuda_runner)
    assert summary(events_of(cfg)) == plain
    assert len(notes) == 1 and "no graphs here" in notes[0]


# ---- accel -----------------------------------------------------------------------------


def test_a_cpu_run_uses_nothing_gpu_only() -> None:
    a = acc.choose(tiny_config(), torch.device("cpu"))
    assert (a.cuda_graphs, a.tf32, a.bf16) == (False, False, False)
    # Channels-last on a CPU comes with packed convs, wherever oneDNN's ops can pack them.
    assert a.packed == a.channels_last == packed.available(torch.float32)
    assert a.describe() == ("channels-last, packed convs" if a.packed else "plain fp32")


def test_graphs_are_chosen_for_adam_on_cuda_unless_turned_off() -> None:
    cuda = torch.device("cuda")
    assert acc.choose(tiny_config(), cuda).cuda_graphs
    assert not acc.choose(tiny_config(optimizer="lbfgs", lr=1.0), cuda).cuda_graphs
    assert not acc.choose(tiny_config(cuda_graphs=False), cuda).cuda_graphs
    assert acc.choose(tiny_config(), cuda).describe() == "cuda graphs, tf32, channels-last"


def test_bf16_runs_the_network_in_bfloat16_and_the_losses_in_float32() -> None:
    cfg = tiny_config(precision="bf16", iterations=4, sav_freq=2)
    prepared = prepare(cfg)
    extractor = prepared.objective.extractor
    # The weights were cast once, when the network was built; the taps come out in bf16.
    assert all(c.weight.dtype == torch.bfloat16 for convs in extractor.convs for c in convs)
    assert {f.dtype for f in extractor(prepared.canvas).values()} == {torch.bfloat16}
    terms = prepared.objective(prepared.canvas)
    assert all(t.dtype == torch.float32 for t in terms)
    assert prepared.objective.accel.describe().endswith("bf16")
    end = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    assert end.status == "finished" and all(np.isfinite(v) for v in end.losses.values())


def test_channels_last_features_give_the_same_gram() -> None:
    x = torch.randn(2, 8, 5, 7)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert not nhwc.is_contiguous()
    torch.testing.assert_close(gram(nhwc), gram(x), rtol=1e-5, atol=1e-6)


def test_channels_last_objective_gives_the_same_losses() -> None:
    cfg = tiny_config()
    prepared = prepare(cfg)
    objective = prepared.objective
    plain = objective(prepared.canvas)[0].tolist()
    objective.accel = acc.Accel(channels_last=True)
    objective.extractor.to(memory_format=torch.channels_last)
    nhwc = objective(prepared.canvas)[0].tolist()
    np.testing.assert_allclose(nhwc, plain, rtol=1e-4)


def test_run_json_reports_the_counted_work_and_tflops(tmp_path) -> None:
    import json

    from conftest import run_single as run

    from nst_tui.engine.flops import objective_flops

    cfg = tiny_config(iterations=4, sav_freq=2)
    result = run(cfg, out_root=tmp_path)
    info = json.loads((result.folder / "run.json").read_text())
    prepared = prepare(cfg)
    gflop = objective_flops(prepared.objective, prepared.canvas).total / 1e9
    assert info["gflop_per_iteration"] == pytest.approx(gflop, rel=1e-3)
    assert info["tflop_s"] == pytest.approx(gflop * info["it_per_s"] / 1e3, rel=1e-2)
    assert info["accel"] == prepared.objective.accel.describe()
    assert info["precision"] == "fp32"
    assert info["precision_reason"] == "precision = 'fp32' in the config"
    multi = run(tiny_config(iterations=2, sav_freq=2, size=48, scales=[32, 48]), out_root=tmp_path)
    info = json.loads((multi.folder / "run.json").read_text())
    assert "gflop_per_iteration" not in info and "tflop_s" not in info
