"""The CUDA path's failure and memory handling, as far as a CPU can check it (issue 30).

- Steps known to wait for the device (w2) are never captured, per config and per batch.
- A capture that fails leaves the caller's stream current, the allocator routing nothing
  to the capture's pool, and the pool released exactly once, in each torch behaviour
  (stand-ins for torch.cuda's streams, graph and allocator; the real torch.cuda.graph).
- A warm-up step that runs out of memory still makes the current stream wait.
- The Adam driver and its step runner are freed by reference counting alone, and a
  batch's graph is dropped once a cell has ended.
- TF32 stays on for convolutions and off for the loss matmuls.
- Frames with the content's colours copy nothing from the host.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from conftest import tiny_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nst_tui.engine import accel as acc
from nst_tui.engine import optimize as opt_mod
from nst_tui.engine.colors import keep_colors
from nst_tui.engine.events import Progress, Status
from nst_tui.engine.graphs import WARM_UP_STEPS, CaptureFailed, StepRunner, capture_graph
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare

CUDA = torch.device("cuda")

# ---- which steps are captured ----------------------------------------------------------


def test_only_w2_steps_are_said_to_wait_for_the_device() -> None:
    assert "eigvalsh" in acc.step_waits(tiny_config(style_stats="w2"))
    assert acc.step_waits(tiny_config()) == ""
    assert acc.step_waits(tiny_config(histogram=1.0)) == ""


def test_a_w2_run_is_never_captured() -> None:
    assert not acc.choose(tiny_config(style_stats="w2"), CUDA).cuda_graphs
    assert acc.choose(tiny_config(histogram=1.0), CUDA).cuda_graphs
    assert acc.choose(tiny_config(style_stats="w2"), CUDA).describe() == "tf32, channels-last"


def test_a_batch_with_a_w2_cell_is_never_captured(monkeypatch) -> None:
    # The accel is chosen from the first cell (gram, graphs on); the second cell's w2 step
    # waits for the device, so the driver must neither capture nor make Adam capturable
    # (on a CPU a capturable Adam raises at its first step).
    cfgs = [tiny_config(iterations=2, sav_freq=1), tiny_config(iterations=2, style_stats="w2")]
    prepared = prepare(cfgs)
    prepared.objective.accel = acc.Accel(cuda_graphs=True)
    enabled = []

    def runner(step, device, on, note=lambda t: None, capture=None):
        enabled.append(on)
        return StepRunner(step, device, on, note, capture)

    monkeypatch.setattr(opt_mod, "StepRunner", runner)
    events: list = []
    ends = optimize(prepared.objective, prepared.canvases, [events.append, lambda e: None])
    assert [e.status for e in ends] == ["finished", "finished"]
    assert enabled == [False]
    notes = [e.message for e in events if isinstance(e, Status)]
    assert notes == ["CUDA graphs off: w2's eigvalsh reads its result on the host"]


# ---- a failed capture, with stand-ins for torch.cuda -----------------------------------


class FakeStream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.waited_for: list[FakeStream] = []

    def wait_stream(self, other: FakeStream) -> None:
        self.waited_for.append(other)


class FakeCuda:
    """torch.cuda's current stream and caching allocator, as far as a capture touches
    them. `torch` picks how a failed capture leaves the allocator:
    - "old": capture_end raises before it ends the pool's routing; reset() releases only
      the pool of a capture that ended (torch before pytorch#180395);
    - "middle": capture_end ends the routing, then raises; reset() as old (#180395 only);
    - "new": as middle, and reset() releases the failed capture's pool (#190348).
    """

    POOL = (0, 7)

    def __init__(self, torch_version: str) -> None:
        self.torch = torch_version
        self.default = FakeStream("default")
        self.current = self.default
        self.routing: tuple[int, int] | None = None
        self.use_count = 0
        self.broken = False
        self.modes: list[str] = []
        self.empty_caches = 0

    def install(self, monkeypatch) -> None:
        cuda, fake = torch.cuda, self

        class Context:
            def __init__(self, stream: FakeStream) -> None:
                self.stream = stream

            def __enter__(self) -> None:
                self.prev, fake.current = fake.current, self.stream

            def __exit__(self, *exc: object) -> None:
                fake.current = self.prev

        class Graph:
            def capture_begin(self, pool=None, capture_error_mode="global", **kw) -> None:
                fake.modes.append(capture_error_mode)
                fake.routing, fake.use_count = pool, fake.use_count + 1
                self.pool, self.ended = pool, False

            def capture_end(self) -> None:
                if fake.broken:
                    if fake.torch != "old":
                        fake.routing = None
                    raise RuntimeError("CUDA error: operation failed due to a previous error")
                fake.routing, self.ended = None, True

            def reset(self) -> None:
                if self.ended or fake.torch == "new":
                    fake.release(0, self.pool)
                    self.ended = False
                    fake.torch = "new-released"  # a second reset releases nothing

        monkeypatch.setattr(cuda, "current_stream", lambda device=None: fake.current)
        monkeypatch.setattr(cuda, "stream", Context)
        monkeypatch.setattr(cuda, "Stream", lambda *a, **k: FakeStream("side"))
        monkeypatch.setattr(cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(cuda, "graph_pool_handle", lambda: self.POOL)
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "current_device", lambda: 0)
        monkeypatch.setattr(cuda, "empty_cache", self.empty_cache)
        monkeypatch.setattr(cuda, "memory_snapshot", self.snapshot)
        monkeypatch.setattr(torch._C, "_cuda_endAllocateToPool", self.end_allocate)
        monkeypatch.setattr(torch._C, "_cuda_releasePool", self.release)

    def empty_cache(self) -> None:
        if self.routing is not None:  # the allocator's internal assert
            raise RuntimeError("captures_underway.empty() INTERNAL ASSERT FAILED")
        self.empty_caches += 1

    def snapshot(self) -> list[dict]:
        # A released pool's free segments go with empty_cache; a held one's stay.
        return [{"segment_pool_id": self.POOL, "allocated_size": 0}] if self.use_count else []

    def end_allocate(self, device: int, pool: tuple[int, int]) -> None:
        if self.routing != pool:
            raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
        self.routing = None

    def release(self, device: int, pool: tuple[int, int]) -> None:
        self.use_count -= 1
        if self.use_count < 0:
            raise RuntimeError("uc >= 0 INTERNAL ASSERT FAILED")


def syncing_step(fake: FakeCuda):
    def step() -> list[torch.Tensor]:
        fake.broken = True  # what eigvalsh's host read does to a capture
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    return step


def test_torch_graph_leaves_its_capture_stream_current_when_capture_end_raises(
    monkeypatch,
) -> None:
    # Why capture_graph wraps it: the installed torch.cuda.graph.__exit__ restores the
    # stream only after capture_end returns.
    fake = FakeCuda("new")
    fake.install(monkeypatch)
    side = FakeStream("capture")
    with pytest.raises(RuntimeError), torch.cuda.graph(torch.cuda.CUDAGraph(), stream=side):
        syncing_step(fake)()
    assert fake.current is side


@pytest.mark.parametrize("torch_version", ["old", "middle", "new"])
def test_a_failed_capture_restores_the_stream_and_releases_its_pool_once(
    monkeypatch, torch_version: str
) -> None:
    fake = FakeCuda(torch_version)
    fake.install(monkeypatch)
    with pytest.raises(CaptureFailed, match="not permitted when stream is capturing"):
        capture_graph(syncing_step(fake))
    assert fake.current is fake.default
    assert fake.routing is None and fake.use_count == 0
    assert fake.modes == ["thread_local"]
    fake.empty_cache()  # what release_memory does at the end of the job: no assert


def test_a_captured_step_keeps_its_pool(monkeypatch) -> None:
    fake = FakeCuda("new")
    fake.install(monkeypatch)
    out = [torch.zeros(1)]
    _graph, outputs = capture_graph(lambda: out)
    assert outputs is out and fake.current is fake.default
    assert fake.routing is None and fake.use_count == 1  # the graph's, until it goes


def test_a_runner_whose_capture_fails_goes_on_plainly_on_the_callers_stream(
    monkeypatch,
) -> None:
    fake = FakeCuda("old")
    fake.install(monkeypatch)
    calls = []

    def step() -> list[torch.Tensor]:
        calls.append(fake.current.name)
        if torch.cuda.is_current_stream_capturing():
            syncing_step(fake)()
        return [torch.zeros(1)]

    capturing = {"on": False}
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: capturing["on"])
    original_begin = torch.cuda.CUDAGraph.capture_begin

    def begin(self, pool=None, **kw):
        original_begin(self, pool, **kw)
        capturing["on"] = True

    monkeypatch.setattr(torch.cuda.CUDAGraph, "capture_begin", begin)

    def stop(*args: object) -> None:
        capturing["on"] = False

    notes: list[str] = []
    runner = StepRunner(step, torch.device("cpu"), enabled=True, note=notes.append)
    runner.graphed, runner.stream = True, FakeStream("warm-up")
    original_end = torch.cuda.CUDAGraph.capture_end

    def end(self) -> None:
        stop()
        original_end(self)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "capture_end", end)
    for _ in range(WARM_UP_STEPS + 3):
        runner()
    assert calls == ["warm-up"] * WARM_UP_STEPS + ["side"] + ["default"] * 3
    assert runner.mode == "plain" and len(notes) == 1 and "not permitted" in notes[0]
    assert fake.current is fake.default and fake.use_count == 0 and fake.routing is None


def test_a_warm_up_step_out_of_memory_still_makes_the_stream_wait(monkeypatch) -> None:
    fake = FakeCuda("new")
    fake.install(monkeypatch)

    def step() -> list[torch.Tensor]:
        raise torch.OutOfMemoryError("CUDA out of memory")

    runner = StepRunner(step, torch.device("cpu"), enabled=True)
    runner.graphed, runner.stream = True, FakeStream("warm-up")
    side = runner.stream
    with pytest.raises(torch.OutOfMemoryError):
        runner()
    assert fake.current is fake.default and fake.default.waited_for == [side]


# ---- what holds the graph --------------------------------------------------------------


def test_the_adam_driver_is_freed_by_reference_counting_alone(monkeypatch) -> None:
    drivers: list[weakref.ref] = []
    runners: list[weakref.ref] = []

    class Recorded(opt_mod._Adam):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            drivers.append(weakref.ref(self))
            drivers.append(weakref.ref(self.opt))

    def runner(*args, **kwargs) -> StepRunner:
        r = StepRunner(*args, **kwargs)
        runners.append(weakref.ref(r))
        return r

    monkeypatch.setattr(opt_mod, "_Adam", Recorded)
    monkeypatch.setattr(opt_mod, "StepRunner", runner)
    prepared = prepare(tiny_config(iterations=3, sav_freq=1))
    gc.collect()
    gc.disable()
    try:
        end = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
        alive = [r() is not None for r in drivers + runners]
    finally:
        gc.enable()
    assert end.status == "finished" and len(drivers) == 2 and len(runners) == 1
    assert alive == [False, False, False]


class FakeGraph:
    def __init__(self, step) -> None:
        self.step = step

    def replay(self) -> None:
        self.step()


def test_a_batch_drops_its_graph_once_a_cell_has_ended(monkeypatch) -> None:
    runners: list[weakref.ref] = []

    def fake_cuda_runner(step, device, enabled, note=lambda t: None, capture=None):
        r = StepRunner(step, device, enabled, note, lambda s: (FakeGraph(s), s()))
        r.graphed = True
        r._warm_up = step  # type: ignore[method-assign]
        runners.append(weakref.ref(r))
        return r

    monkeypatch.setattr(opt_mod, "StepRunner", fake_cuda_runner)
    cfgs = [tiny_config(iterations=n, sav_freq=2, content_layers=[i]) for n, i in ((6, 1), (10, 3))]
    prepared = prepare(cfgs)
    seen = []

    def emit(event: object) -> None:
        if isinstance(event, Progress):
            alive = runners[0]() is not None
            mode = runners[0]().mode if alive else "gone"  # type: ignore[union-attr]
            seen.append((event.iteration, mode))

    gc.disable()  # the runner must go when the batch shrinks, not at a collection
    try:
        ends = optimize(prepared.objective, prepared.canvases, [lambda e: None, emit])
    finally:
        gc.enable()
    assert [e.status for e in ends] == ["finished", "finished"]
    # Reports land at once on a CPU: iteration 6's is handed out before the cell ends.
    modes = ["plain", "cuda graph", "cuda graph", "gone", "gone"]  # warm-up, replays, shrunk
    assert seen == list(zip(range(2, 11, 2), modes, strict=True))
    assert all(p.grad is None or p.grad.shape == p.shape for p in prepared.canvases)


def test_a_multi_scale_cell_frees_each_scale_before_the_next(monkeypatch) -> None:
    import threading

    from nst_tui.engine import scales
    from nst_tui.job import lifecycle
    from nst_tui.job.plan import Batch, Cell

    made: list[weakref.ref] = []
    gone_at_switch: list[list[bool]] = []

    def recorded(real, at_switch: bool):
        def prepare_and_record(*args, **kwargs):
            if at_switch:
                gone_at_switch.append([r() is None for r in made])
            p = real(*args, **kwargs)
            made.append(weakref.ref(p))
            return p

        return prepare_and_record

    monkeypatch.setattr(lifecycle, "prepare", recorded(lifecycle.prepare, False))
    monkeypatch.setattr(scales, "prepare", recorded(scales.prepare, True))
    cfg = tiny_config(size=48, scales=[32, 40, 48], iterations=2, sav_freq=2)
    events: list = []
    gc.collect()
    gc.disable()
    try:
        cell = Cell(0, 0, 0, "cell", {}, cfg)
        lifecycle.run_batch(0, Batch((0,), False), [cell], events.append, threading.Event())
    finally:
        gc.enable()
    assert events[-1].event.status == "finished"
    assert gone_at_switch == [[True], [True, True]]


# ---- arithmetic ------------------------------------------------------------------------


def test_tf32_is_for_convolutions_and_never_for_the_loss_matmuls(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    acc.apply_backend_flags(acc.Accel(tf32=True))
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32


class Devices(TorchDispatchMode):
    """Every device a tensor given to an op lives on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor):
                self.seen.add(t.device.type)
        return func(*args, **kwargs)


def test_frames_with_the_contents_colours_copy_nothing_from_the_host() -> None:
    # On a GPU any host tensor an op reads is a copy that makes the host wait; on "meta"
    # such a tensor shows as a CPU one. The frame is made inside the loop.
    canvas = torch.rand(2, 3, 8, 8, device="meta")
    content = torch.rand(1, 3, 8, 8, device="meta")
    with Devices() as devices:
        out = keep_colors(canvas, content)
    assert devices.seen == {"meta"} and out.shape == canvas.shape


def test_keep_colors_takes_the_contents_chroma_and_the_canvas_luminance() -> None:
    gen = torch.Generator().manual_seed(0)
    canvas = torch.rand(1, 3, 4, 4, generator=gen) * 0.5 + 0.25
    content = torch.rand(1, 3, 4, 4, generator=gen) * 0.2 + 0.4
    out = keep_colors(canvas, content)
    yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
    )

    def to_yiq(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,bjhw->bihw", yiq, x)

    torch.testing.assert_close(to_yiq(out)[:, 0], to_yiq(canvas)[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(to_yiq(out)[:, 1:], to_yiq(content)[:, 1:], atol=1e-5, rtol=0)
