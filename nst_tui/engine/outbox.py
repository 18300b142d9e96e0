"""Reports (loss values and a frame) taken off the device without waiting for it.

On a GPU, reading a number back (`.item()`, `.tolist()`, `.cpu()`) blocks the
host until the device has finished everything queued before it: the optimizer
then stops feeding kernels while the copy drains. Instead, a report is copied
into pinned host memory with `non_blocking=True` and an event is recorded after
the copy; the loop goes on queueing steps and picks the report up once the
event has fired (a few steps later). On the CPU the copy is immediate.

The depth bounds how far delivery may lag: past it, the oldest copy is waited
for, which at the reporting rate (every sav_freq steps) is long since done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


class Marker(Protocol):
    """What a CUDA event offers: record on the current stream, ask or wait for it."""

    def record(self) -> None: ...
    def query(self) -> bool: ...
    def synchronize(self) -> None: ...


class _Done:
    """The CPU's marker: every copy has finished by the time it returns."""

    def record(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass


@dataclass
class Report:
    iteration: int
    values: list[float]
    image: np.ndarray | None  # H x W x 3 uint8; None when none was put


@dataclass
class _Pending:
    iteration: int
    values: torch.Tensor  # host copies, valid once `marker` has fired
    image: torch.Tensor | None
    marker: Marker


def device_marker(device: torch.device) -> Callable[[], Marker]:
    if device.type == "cuda":
        return lambda: torch.cuda.Event()
    return _Done


class Outbox:
    def __init__(
        self,
        device: torch.device,
        depth: int = 4,
        marker: Callable[[], Marker] | None = None,
    ) -> None:
        self.pinned = device.type == "cuda"
        self.marker = marker or device_marker(device)
        self.depth = depth
        self.pending: deque[_Pending] = deque()

    def put(self, iteration: int, values: torch.Tensor, image: torch.Tensor | None = None) -> None:
        """Queue the copy of `values` (1-D float) and `image` (H x W x 3 uint8; optional),
        both on the device, as they are now; later steps may overwrite the sources freely."""
        host_values = self._host_copy(values.detach())
        host_image = None if image is None else self._host_copy(image.detach())
        marker = self.marker()
        marker.record()
        self.pending.append(_Pending(iteration, host_values, host_image, marker))
        if len(self.pending) > self.depth:
            self.pending[0].marker.synchronize()  # ready() then hands it out

    def _host_copy(self, t: torch.Tensor) -> torch.Tensor:
        if not self.pinned:
            return t.to("cpu", copy=True)
        out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        out.copy_(t, non_blocking=True)
        return out

    def ready(self) -> list[Report]:
        """Reports whose copies have landed, oldest first; never waits."""
        out = []
        while self.pending and self.pending[0].marker.query():
            out.append(_report(self.pending.popleft()))
        return out

    def drain(self) -> list[Report]:
        """Every queued report, waiting for the copies still in flight."""
        out = []
        while self.pending:
            p = self.pending.popleft()
            p.marker.synchronize()
            out.append(_report(p))
        return out

    def clear(self) -> None:
        """Drop what is queued (the run has ended; nobody will read it)."""
        self.pending.clear()

    def __bool__(self) -> bool:
        return bool(self.pending)


def _report(p: _Pending) -> Report:
    return Report(p.iteration, p.values.tolist(), None if p.image is None else p.image.numpy())
