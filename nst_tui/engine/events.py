"""What the engine tells its listeners. Small, immutable, host-side values only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Status:
    """Something slow is happening: loading weights, downloading, a pass in tiles.

    With a fraction (0..1, how much is done) it is a part's progress, updated in place:
    `message` reads "<label>: <where it is>", the label (download, targets, tiles) short
    enough for a bar's name."""

    message: str
    fraction: float | None = None


# How slow work before the loop reports itself (a Status's two fields): loading weights,
# checking inputs. Torch-free, so a job's planning and its executors' seam can name it.
StatusFn = Callable[[str, float | None], None]


def quiet(message: str, fraction: float | None = None) -> None:
    """A StatusFn that tells no one."""


@dataclass(frozen=True)
class Placed:
    """Where a run was placed, once prepared: its device and network, for listeners and
    run.json (`info`: device, backbone, backbone_source, accel, work per iteration, notes)."""

    device: str
    backbone: str
    info: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """Losses at a logged iteration (every sav_freq and the last), and, when steps take
    seconds, at the others too (`logged` False: shown, not written to the loss log).

    `losses` holds the weighted terms: total, content, style, tv, then one
    entry per layer ("content/conv4_1", "style/conv1_1", ...), so that total =
    content + style + tv and each term sums its layers.
    """

    iteration: int  # steps done, 1-based
    total: int
    losses: dict[str, float]
    it_per_s: float
    elapsed: float  # seconds since the loop started
    # Counted work per second (engine/flops.py) and its fraction of the device's
    # datasheet peak; None where not known (a multi-scale run, a CPU, an unlisted GPU).
    tflop_s: float | None = None
    of_peak: float | None = None
    # The stop_change rule's last measure (engine/converge.py): how much lower the last
    # window's mean loss was than the one before, as a fraction of it; None before two
    # windows have closed, or with the rule off.
    gain: float | None = None
    logged: bool = True  # False: a slow step's count between logged ones (no frame)


def work_rate(tflop_s: float, of_peak: float | None = None) -> str:
    """How a Progress's work reads, in the status line and the headless bar. A CPU does
    a fraction of a TFLOP/s: GFLOP/s there, so the digits say something."""
    rate = f"{tflop_s:.2f} TFLOP/s" if tflop_s >= 1 else f"{tflop_s * 1e3:.1f} GFLOP/s"
    return rate if of_peak is None else f"{rate} ({of_peak:.1%} of peak)"


def pace(per_s: float, unit: str = "it") -> str:
    """How fast iterations go, as the status line and the headless bar say it: per second,
    or, for a step slower than ten seconds (a large canvas in tiles), seconds per step, so
    the digits say something ("16.1 it/s", "0.45 it/s", "638 s/it")."""
    if per_s >= 1:
        return f"{per_s:.1f} {unit}/s"
    if per_s >= 0.1:
        return f"{per_s:.2f} {unit}/s"
    return f"{1 / per_s:.0f} s/{unit}" if per_s > 0 else f"- {unit}/s"


@dataclass(frozen=True)
class Frame:
    """The canvas after `iteration` steps, full size, HxWx3 uint8."""

    iteration: int
    image: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Finished:
    """The loop has ended, for whatever reason; `image` is the last canvas."""

    status: str  # finished | cancelled | failed
    reason: str
    iterations_done: int
    wall_time: float
    it_per_s: float
    losses: dict[str, float]
    image: np.ndarray = field(repr=False)
    # False: the cell never started (a sweep stopped before its turn): no canvas, so no
    # final image; `image` is a placeholder pixel.
    ran: bool = True
    # True: the stop_change rule ended it before `iterations` (its reason says where and
    # why); `gain`: the rule's last measure, as Progress's.
    converged: bool = False
    gain: float | None = None


Event = Status | Placed | Progress | Frame | Finished
# Where a cell's engine events go (the job layer tags them with the cell): the one `Emit`.
Emit = Callable[[Event], None]
