"""The one cell lifecycle: prepare, optimize (alone or in a batch), end every cell, release.

Whatever ends a batch (its own end, a cancel, a signal, running out of memory, a
bug), each of its cells emits a `Finished` before `run_batch` returns or raises:
the recorders listening (nst_tui.job.run) then write every cell's run.json. It
writes no file itself, so it runs the same in this process or on a cluster worker.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from nst_tui.config import MIN_EDGE, Config, tiles_refused
from nst_tui.engine.colors import shown
from nst_tui.engine.device_memory import PeakMeter, device_state
from nst_tui.engine.events import Event, Finished, Frame, Placed, Progress, Status
from nst_tui.engine.flops import iteration_flops
from nst_tui.engine.images import check_image
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import Prepared, prepare, resolve_device, weights_held
from nst_tui.engine.scales import optimize_scales, scale_configs
from nst_tui.engine.tensors import to_uint8
from nst_tui.engine.tiles import Interrupted
from nst_tui.errors import NSTError, RunError
from nst_tui.heap import give_back_heap, set_allocator
from nst_tui.job.events import BatchStarted, CellEvent, Listener, not_run
from nst_tui.job.plan import Batch, Cell
from nst_tui.memory import Plan, batch_fits, plan
from nst_tui.sizes import show_bytes


class _Seen:
    """What a cell has reported so far: where a crash record says it stopped."""

    def __init__(self) -> None:
        self.iteration = 0
        self.losses: dict[str, float] = {}
        self.frame: np.ndarray | None = None
        self.finished: Finished | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.iteration, self.losses = event.iteration, event.losses
        elif isinstance(event, Frame):
            self.frame = event.image
        elif isinstance(event, Finished):
            self.finished = event


def run_batch(
    index: int, batch: Batch, cells: Sequence[Cell], emit: Listener, cancel: threading.Event
) -> None:
    """Run one batch of cells (their configs share a batch_key when `batch.batched`)."""
    if cancel.is_set():  # cancelled before its turn: its cells never start
        for c in cells:
            emit(CellEvent(c.index, not_run("cancelled", "cancelled before it started")))
        return
    if batch.batched:
        parts = split_for_memory(cells)
        if len(parts) > 1:  # this device holds fewer canvases at once: smaller batches
            for part in parts:
                sub = Batch(tuple(c.index for c in part), len(part) > 1)
                run_batch(index, sub, part, emit, cancel)
            return
    emit(BatchStarted(index, batch.cells, batch.batched))
    seen = {c.index: _Seen() for c in cells}
    meter: PeakMeter | None = None
    predicted: Plan | None = None
    try:  # the plan on this device (a Ray worker's own GPU), and its peak from here on
        meter = PeakMeter(resolve_device(cells[0].config.device)).start()
        predicted = run_plan([c.config for c in cells], meter.device)
        # Before the weights load: memory held as the plan counts it where the run is near
        # its budget, else glibc's faster reuse (a Ray worker's process too). Going tight
        # gives back what the heap kept: planned again from what is left.
        if set_allocator(predicted.tight) == "tight":
            meter.start()
            predicted = run_plan([c.config for c in cells], meter.device)
    except NSTError:
        set_allocator(False)  # a bad device or image: prepare says so, and the records

    def cell_emit(i: int) -> Callable[[Event], None]:
        def send(event: Event) -> None:
            # A Finished counts once recorded: if recording it fails, the crash path ends
            # the cell again (failed), and that record is tried too.
            if not isinstance(event, Finished):
                seen[i](event)
            elif meter is not None and event.ran:  # the plan beside the peak it met
                measured: dict[str, object] = {"memory": meter.record(predicted)}
                # On a full disk this note's write may fail: the end's record comes next
                # (it frees the scratch frames first) and says why the run failed.
                with contextlib.suppress(RunError):
                    emit(CellEvent(i, Placed(str(meter.device), "", measured)))
            emit(CellEvent(i, event))
            if isinstance(event, Finished):
                seen[i](event)

        return send

    emits = {c.index: cell_emit(c.index) for c in cells}

    def note(msg: str, frac: float | None = None) -> None:
        # A cell's own line when it runs alone; the batch's otherwise.
        event = Status(msg, frac)
        emit(CellEvent(cells[0].index, event) if len(cells) == 1 else event)

    prepared: Prepared | None = None
    device: torch.device | None = None  # whose memory to release at the end
    started: float | None = None  # when the loop started
    try:
        with contextlib.suppress(Interrupted):  # in the targets' pass in tiles: cancel set
            prepared = prepare([scale_configs(c.config)[0] for c in cells], note, cancel=cancel)
        if prepared is None or cancel.is_set():
            # While it was loading: no step was taken, no canvas to keep.
            for cell in cells:
                emits[cell.index](not_run("cancelled", "cancelled before its first step"))
            return
        device = prepared.device
        if prepared.plan is not None and not cells[0].config.scales:
            # The plan the run keeps beside its peak is the one it runs by: made once the
            # weights were in, its tiles may differ from the first one's (a multi-scale
            # run keeps the first: it covers every scale).
            predicted = prepared.plan
        for k, cell in enumerate(cells):
            emits[cell.index](placed(prepared, cell.config, k, predicted))
        started = time.perf_counter()
        if batch.batched:
            optimize(prepared.objective, prepared.canvases, [emits[c.index] for c in cells], cancel)
        else:
            (cell,) = cells
            if cell.config.scales:
                # Each scale's network and targets go when the next scale comes, which
                # a reference from this frame would prevent: handed over, not kept.
                first, prepared = [prepared], None
                optimize_scales(first.pop(), cell.config, emits[cell.index], cancel, note)
            else:
                optimize_scales(prepared, cell.config, emits[cell.index], cancel, note)
    except BaseException as exc:
        wall = time.perf_counter() - started if started is not None else 0.0
        errors = []
        for k, cell in enumerate(cells):
            s = seen[cell.index]
            if s.finished is not None:
                continue
            status, reason = crash_status(
                exc, cancel, cell.config, s.iteration, started, prepared, predicted
            )
            image = s.frame if s.frame is not None else _image(prepared, k)
            end = Finished(
                status, reason, s.iteration, wall, s.iteration / max(wall, 1e-9), s.losses, image
            )
            try:
                emits[cell.index](end)
            except Exception as record_error:  # this cell's record could not be written
                errors.append(record_error)
        # Running out of memory, or of disk for the record, is the cell's result (failed,
        # recorded); a signal or a bug goes on up once every cell is recorded.
        if not (is_out_of_memory(exc) or isinstance(exc, RunError)):
            raise
        if errors:  # not even a failed record could be written: the cause goes up
            raise (exc if isinstance(exc, RunError) else errors[0]) from None
    finally:
        del prepared
        release_memory(device)


def split_for_memory(cells: Sequence[Cell]) -> list[list[Cell]]:
    """A batch cut, in order, into batches that each fit the budget on this device, planned
    here (on a Ray worker: its own GPU); the batch whole when it fits or cannot be told."""
    cfgs = [c.config for c in cells]
    try:
        device = device_state(resolve_device(cfgs[0].device), weights_held(cfgs[0].backbone))
        content, styles = image_sizes(cfgs[0])
    except NSTError:
        return [list(cells)]  # prepare raises it, and the cells' records say so
    parts: list[list[Cell]] = []
    for cell in cells:
        if parts and batch_fits([c.config for c in [*parts[-1], cell]], content, device, styles):
            parts[-1].append(cell)
        else:
            parts.append([cell])
    return parts


def image_sizes(cfg: Config) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(width, height) of the content image and of each style image (their headers)."""
    content = check_image(cfg.content_image, "content_image")
    styles = [check_image(cfg.style_image, "style_image")]
    styles += [check_image(p, "style_images") for p in cfg.style_images]
    return content, styles


def run_plan(cfgs: Sequence[Config], device: torch.device) -> Plan:
    """The memory plan of a batch (every scale) on `device` as it is now."""
    content, styles = image_sizes(cfgs[0])
    state = device_state(device, weights_held(cfgs[0].backbone))
    return plan(cfgs, content, state, styles, refused=tiles_refused(cfgs[0]))


def placed(prepared: Prepared, cfg: Config, k: int, predicted: Plan | None = None) -> Placed:
    """Where cell k of the batch runs, the work of one of its iterations and the memory
    its batch is planned to need."""
    device, backbone = str(prepared.device), prepared.backbone.name
    info: dict[str, object] = {
        "device": device,
        "backbone": backbone,
        "backbone_source": prepared.backbone.source,
        "accel": prepared.objective.accel.describe(),  # as chosen; a failed capture says so
        # What the network computes in, and why (precision "auto" resolves per device).
        "precision": prepared.objective.accel.precision,
        "precision_reason": prepared.objective.accel.precision_reason,
    }
    if not cfg.scales:  # a multi-scale run's iterations differ in size: no one figure
        canvas = prepared.canvases[k]
        targets = prepared.objective.cells[k]
        flops = iteration_flops(
            prepared.objective.extractor, canvas.shape[-2], canvas.shape[-1], targets.style_layers
        )
        info["gflop_per_iteration"] = round(flops.total / 1e9, 4)
    if predicted is not None:
        info["memory"] = predicted.record()
    if prepared.notes:
        info["notes"] = list(prepared.notes)
    return Placed(device, backbone, info)


def _image(prepared: Prepared | None, k: int) -> np.ndarray:
    """The canvas as it is, for a cell that crashed before its first frame."""
    try:
        assert prepared is not None
        colors = prepared.objective.cells[k].colors
        return to_uint8(shown(prepared.canvases[k], colors))
    except Exception:  # no canvas yet, or the device is the thing that broke
        return np.zeros((1, 1, 3), np.uint8)


def crash_status(
    exc: BaseException,
    cancel: threading.Event,
    cfg: Config,
    at: int,
    started: float | None,
    prepared: Prepared | None,
    predicted: Plan | None = None,
) -> tuple[str, str]:
    """How a cell whose batch raised ends: running out of memory is a result (failed,
    with a budget and a smaller size to try); a signal a cancel; anything else a failure
    naming the error. `at`: the last iteration it reported."""
    if is_out_of_memory(exc):
        device = str(prepared.device) if prepared is not None else cfg.device
        doing = "running" if started is not None else "preparing"
        return "failed", out_of_memory_reason(cfg, doing, device, predicted)
    if isinstance(exc, RunError):  # a record's file could not be written: it says which
        return "failed", str(exc)
    if cancel.is_set() or isinstance(exc, KeyboardInterrupt | SystemExit):
        return "cancelled", f"cancelled at iteration {at} ({type(exc).__name__})"
    return "failed", f"{type(exc).__name__}: {exc}"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    # The CPU allocator raises a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def out_of_memory_reason(
    cfg: Config, doing: str, device: str, predicted: Plan | None = None
) -> str:
    """What ran out, what the plan expected, and what to try: first a lower max_memory,
    which the plan meets with exact tiles (the same picture), then a smaller one."""
    smaller = max(MIN_EDGE, cfg.size // 2)
    planned = ""
    lower = f"a lower max_memory (now {cfg.max_memory!r}; the plan then tiles)"
    if predicted is not None:
        # Something took the memory the plan counted on, or the plan fell short: half of
        # what it predicted makes it tile (or tile smaller).
        planned = f" (planned ≈{show_bytes(predicted.peak)} {predicted.of_budget()})"
        half = show_bytes(predicted.peak / 2).replace(" ", "")
        lower = f'max_memory = "{half}" (now {cfg.max_memory!r}; the plan then tiles)'
    return (
        f"out of memory while {doing} at size {cfg.size} on {device}{planned}; "
        f"try {lower}, size {smaller}, fewer or shallower layers, or a free device"
    )


def release_memory(device: torch.device | None) -> None:
    """Hand cached device memory back, so the next run (or another process) can have it."""
    if device is not None and device.type == "cuda":
        gc.collect()  # tensors held only by reference cycles (a traceback's frames)
        torch.cuda.empty_cache()
    # What a roomy heap kept for its next step: an idle dashboard holds what is live, not
    # its last run's peak. Measured in test_soak (20 runs): growth of -56..+64 MB without
    # it, 5.9-7.3 MB with; it costs 4-40 ms a batch (a full gc.collect here cost 0.45 s).
    give_back_heap()
