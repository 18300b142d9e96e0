"""One Adam step replayed from a CUDA graph, or run as plain PyTorch.

At 128 px the network is small enough that a step on a big GPU is bound by
launching its few hundred kernels, not by arithmetic. A CUDA graph records the
whole step (forward, backward, Adam update, clamp, average) once and replays it
with one launch. Capture needs the step to be free of host synchronisation and
of fresh allocations outside the graph's pool, which the loop guarantees (the
outbox reads reports off the device asynchronously), and Adam built with
`capturable=True`.

Anything that goes wrong while capturing (an op that cannot be captured, an old
driver, too little memory) makes the runner fall back to the plain step for the
rest of the run and say why once; the results are the same either way, only the
speed differs. On a CPU the step is always plain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Step = Callable[[], list[torch.Tensor]]
Note = Callable[[str], None]

WARM_UP_STEPS = 3  # plain steps on a side stream first, as torch.cuda.graph asks


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
        capture: Callable[[Step], tuple[object, list[torch.Tensor]]] | None = None,
    ) -> None:
        self.step = step
        self.note = note
        self.graphed = enabled and device.type == "cuda"
        self.capture = capture or capture_graph
        self.calls = 0
        self.graph: object | None = None
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
            self.graph.replay()  # type: ignore[attr-defined]
            return self.outputs
        if self.calls <= WARM_UP_STEPS:
            return self._warm_up()
        try:
            self.graph, self.outputs = self.capture(self.step)
        except Exception as exc:  # any failure to capture: the plain step is still right
            self.graphed = False
            self.note(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); plain steps")
            return self.step()
        self.graph.replay()  # type: ignore[attr-defined]
        return self.outputs

    def _warm_up(self) -> list[torch.Tensor]:
        # Lazy initialisation (optimizer state, cuDNN plans, autograd's streams) happens
        # here, off the capture; the current stream then waits for the side stream.
        assert self.stream is not None
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = self.step()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out


def capture_graph(step: Step) -> tuple[object, list[torch.Tensor]]:
    """Record one call of `step` into a CUDA graph (nothing runs until it is replayed)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = step()
    return graph, outputs
