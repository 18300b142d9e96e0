"""One Adam step replayed from a CUDA graph, or run as plain PyTorch.

At 128 px the network is small enough that a step on a big GPU is bound by
launching its few hundred kernels, not by arithmetic. A CUDA graph records the
whole step (forward, backward, Adam update, clamp, average) once and replays it
with one launch. Capture needs the step to be free of host synchronisation and
of fresh allocations outside the graph's pool, which the loop guarantees (the
outbox reads reports off the device asynchronously), and Adam built with
`capturable=True`.

Steps known to wait for the device are never captured (accel.step_waits: w2's
eigvalsh). Anything else that goes wrong while capturing (an op that cannot be
captured, an old driver, too little memory) makes the runner fall back to the plain
step for the rest of the run and say why once; the results are the same either way,
only the speed differs. A failed capture must leave torch as it found it: the
caller's stream current again and the capture's memory pool given back (see
capture_graph). On a CPU the step is always plain.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from typing import Protocol

import torch

Step = Callable[[], list[torch.Tensor]]
Note = Callable[[str], None]


class Graph(Protocol):
    """What the runner needs of a captured graph (torch.cuda.CUDAGraph, or a test's)."""

    def replay(self) -> None: ...


WARM_UP_STEPS = 3  # plain steps on a side stream first, as torch.cuda.graph asks

# Under torch's default "global" mode an unsafe CUDA call from any thread breaks the
# capture (and fails in that thread): the frame writer and the UI free the pinned frames
# the outbox hands out whenever they are done with them. "thread_local" forbids them in
# the capturing thread only, as PyTorch's own cudagraph trees capture
# (torch/_inductor/cudagraph_trees.py).
CAPTURE_MODE = "thread_local"


class CaptureFailed(RuntimeError):
    """A capture that did not complete; torch has been put back as it was before it."""


class StepRunner:
    """Call it once per iteration; it returns that step's loss terms (device tensors).

    A replayed graph returns the same tensors every time, overwritten in place: read
    them (or queue their copy) before the next call.
    """

    def __init__(
        self,
        step: Step,
        device: torch.device,
        enabled: bool,
        note: Note = lambda text: None,
        capture: Callable[[Step], tuple[Graph, list[torch.Tensor]]] | None = None,
    ) -> None:
        self.step = step
        self.note = note
        self.graphed = enabled and device.type == "cuda"
        self.capture = capture or capture_graph
        self.calls = 0
        self.graph: Graph | None = None
        self.outputs: list[torch.Tensor] = []
        self.stream = torch.cuda.Stream(device) if self.graphed else None

    @property
    def mode(self) -> str:
        return "cuda graph" if self.graph is not None else "plain"

    def __call__(self) -> list[torch.Tensor]:
        self.calls += 1
        if not self.graphed:
            return self.step()
        if self.graph is not None:
            self.graph.replay()
            return self.outputs
        if self.calls <= WARM_UP_STEPS:
            return self._warm_up()
        failure = ""
        try:
            self.graph, self.outputs = self.capture(self.step)
        except Exception as exc:  # any failure to capture: the plain step is still right
            failure = f"{type(exc).__name__}: {exc}"
        if self.graph is None:  # failed: the plain step runs outside the except, error gone
            self.close()
            self.note(f"CUDA graph capture failed ({failure}); plain steps")
            return self.step()
        self.graph.replay()
        return self.outputs

    def close(self) -> None:
        """Plain steps from now on; a captured graph is dropped (call it when the graph
        will not be replayed again, with nothing left referring to its outputs, the
        canvases' grads included)."""
        had_graph = self.graph is not None
        self.graph, self.outputs, self.graphed, self.stream = None, [], False, None
        if had_graph:
            # The graph's private pool goes back to the allocator with it; empty_cache
            # hands it to the device now (one device-wide wait), where it would stay
            # reserved beside the plain step's memory until the allocator ran short.
            torch.cuda.empty_cache()

    def _warm_up(self) -> list[torch.Tensor]:
        # Lazy initialisation (optimizer state, cuDNN plans, autograd's streams) happens
        # here, off the capture; the current stream then waits for the side stream.
        assert self.stream is not None
        self.stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(self.stream):
                return self.step()
        finally:
            # Also when the step raised (out of memory): the run then reads its canvas
            # for the final image, which side-stream work may still be writing.
            torch.cuda.current_stream().wait_stream(self.stream)


def capture_graph(step: Step) -> tuple[torch.cuda.CUDAGraph, list[torch.Tensor]]:
    """Record one call of `step` into a CUDA graph (nothing runs until it is replayed).

    Raises CaptureFailed, naming the first error, once torch is as it was before."""
    graph = torch.cuda.CUDAGraph()
    pool = torch.cuda.graph_pool_handle()  # named here: a failed capture's pool is found
    stream = torch.cuda.Stream()
    failure = ""
    # The outer context puts the caller's stream back however the capture ends:
    # torch.cuda.graph.__exit__ restores it only after capture_end returns, and
    # capture_end raises for a capture an op has broken (torch/cuda/graphs.py).
    with torch.cuda.stream(stream):
        try:
            with torch.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode=CAPTURE_MODE):
                outputs = step()
        except Exception as exc:
            first: BaseException = exc
            while first.__context__ is not None:  # capture_end's error follows the op's
                first = first.__context__
            failure = f"{type(first).__name__}: {first}"
    if not failure:
        return graph, outputs
    # Out of the except clause: the traceback that held the aborted step's tensors is gone,
    # so the pool's blocks are free to give back.
    give_back_pool(graph, pool)
    del graph
    raise CaptureFailed(failure)


def give_back_pool(graph: torch.cuda.CUDAGraph, pool: tuple[int, int]) -> None:
    """Undo what a failed capture leaves in the caching allocator, in any torch version.

    Recent torch (and the 2.11-2.13 backports of pytorch#180395 and #190348) ends the
    capture's pool routing before capture_end raises and releases the pool in
    CUDAGraph.reset(). Older versions raise from capture_end before ending the routing (the
    next empty_cache then trips `captures_underway.empty()`, an internal assert), and
    release a pool only for a capture that ended (its memory reserved for the process's
    life)."""
    device = torch.cuda.current_device()
    with contextlib.suppress(RuntimeError):
        graph.reset()
    with contextlib.suppress(RuntimeError):  # raises where torch has ended it already
        torch._C._cuda_endAllocateToPool(device, pool)
    gc.collect()  # the aborted step's tensors, should a reference cycle hold them
    torch.cuda.empty_cache()
    left = [
        s
        for s in torch.cuda.memory_snapshot()
        if tuple(s.get("segment_pool_id", ())) == tuple(pool)
    ]
    # Segments left, all free: nobody released the pool (a released one would have gone
    # with empty_cache). Any in use: it cannot be told, and releasing twice would break
    # the allocator's count, so they stay.
    if left and all(s["allocated_size"] == 0 for s in left):
        torch._C._cuda_releasePool(device, pool)
        torch.cuda.empty_cache()
