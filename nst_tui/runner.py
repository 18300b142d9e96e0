"""One run end to end: prepare, optimize, record. Shared by the CLI and the dashboard.

Listeners receive every engine event; the recorder is one of them, so what
lands on disk does not depend on who is watching. Whatever ends the loop (its
own end, a cancel, a signal, running out of memory, a bug), the run folder gets
its run.json and the frames made so far before `run` returns or raises.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nst_tui.config import MIN_SIZE, Config
from nst_tui.engine.colors import shown
from nst_tui.engine.events import Event, Finished, Status
from nst_tui.engine.flops import objective_flops
from nst_tui.engine.images import to_uint8
from nst_tui.engine.prepare import Prepared, prepare
from nst_tui.engine.scales import optimize_scales, scale_configs
from nst_tui.errors import RunError
from nst_tui.records import RunRecorder, check_outputs

Listener = Callable[[Event], None]

DEFAULT_OUTPUTS = Path("outputs")


@dataclass(frozen=True)
class RunResult:
    folder: Path
    finished: Finished
    device: str
    backbone: str
    notes: tuple[str, ...] = ()  # what was done unasked, e.g. an animated GIF's first frame


def run(
    cfg: Config,
    *,
    out_root: Path = DEFAULT_OUTPUTS,
    label: str = "run",
    listeners: Sequence[Listener] = (),
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run one experiment and write its folder. Raises NSTError before anything starts
    when an input is bad; once the loop starts, problems end up in run.json."""
    cancel = cancel or threading.Event()

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    check_outputs(out_root)  # before seconds of loading, not after

    def status(msg: str, frac: float | None = None) -> None:
        emit(Status(msg, frac))

    prepared: Prepared | None = None
    try:
        try:
            prepared = prepare(scale_configs(cfg)[0], status)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise RunError(out_of_memory_reason(cfg, "preparing", cfg.device)) from None
            raise
        info = {
            "device": str(prepared.device),
            "backbone": prepared.backbone.name,
            "backbone_source": prepared.backbone.source,
            "accel": prepared.objective.accel.describe(),  # as chosen; a failed capture says so
            **work_per_iteration(prepared, cfg),
            **({"notes": prepared.notes} if prepared.notes else {}),
        }
        recorder = RunRecorder(out_root, cfg, label, info)

        def emit_all(event: Event) -> None:
            recorder(event)
            emit(event)

        emit(Status(f"running on {info['device']} with {info['backbone']} ({info['accel']})", None))
        try:
            finished = optimize_scales(prepared, cfg, emit_all, cancel, status)
        except BaseException as exc:
            finished = _record_the_crash(recorder, prepared, cfg, cancel, exc)
            emit(finished)
        return RunResult(
            recorder.folder, finished, info["device"], info["backbone"], tuple(prepared.notes)
        )
    finally:
        device = prepared.device if prepared is not None else None
        del prepared
        release_memory(device)


def _record_the_crash(
    recorder: RunRecorder,
    prepared: Prepared,
    cfg: Config,
    cancel: threading.Event,
    exc: BaseException,
) -> Finished:
    """Write run.json for a loop that raised; return its Finished if the run may go on.

    Running out of memory is a result (failed, with a smaller size to try); a
    signal or a bug is re-raised once the record is safe.
    """
    oom = is_out_of_memory(exc)
    if oom:
        status, reason = "failed", out_of_memory_reason(cfg, "running", str(prepared.device))
    elif cancel.is_set() or isinstance(exc, KeyboardInterrupt):
        at = recorder.rows[-1]["iteration"] if recorder.rows else 0
        status, reason = "cancelled", f"cancelled at iteration {at} ({type(exc).__name__})"
    else:
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
    if recorder.result is None:  # the recorder itself did not fail while finishing
        try:
            image = to_uint8(shown(prepared.canvas, prepared.objective.colors))
        except Exception:  # the device may be the thing that broke
            image = None
        try:
            finished = recorder.abandon(status, reason, image)
        except RunError:
            if oom:
                raise
            raise exc from None  # the first error is the one to see
        if oom:
            return finished
    raise exc


def work_per_iteration(prepared: Prepared, cfg: Config) -> dict[str, float]:
    """GFLOP of one iteration, counted from the layer shapes; run.json adds TFLOP/s. A
    multi-scale run's iterations differ in size, so it has no one figure."""
    if cfg.scales:
        return {}
    flops = objective_flops(prepared.objective, prepared.canvas)
    return {"gflop_per_iteration": round(flops.total / 1e9, 4)}


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    # The CPU allocator raises a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def out_of_memory_reason(cfg: Config, doing: str, device: str) -> str:
    smaller = max(MIN_SIZE, cfg.size // 2)
    return (
        f"out of memory while {doing} at size {cfg.size} on {device}; "
        f"try size {smaller}, fewer or shallower layers, or a free device"
    )


def release_memory(device: torch.device | None) -> None:
    """Hand cached device memory back, so the next run (or another process) can have it."""
    if device is not None and device.type == "cuda":
        gc.collect()  # tensors held only by reference cycles (a traceback's frames)
        torch.cuda.empty_cache()
