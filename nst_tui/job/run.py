"""Run a job end to end: check, make its folders, hand its batches to an executor,
record every cell, write the sweep folder's own files.

Every run goes through here: a single run is a job of one cell, whose folder is
its run folder; a sweep's folder holds one run folder per cell. Recorders are
listeners of the cells' events, so what lands on disk does not depend on who
watches or where the cells ran. Whatever ends the job (its end, a cancel, a
signal, a crash), every cell has its run.json and a sweep its final sweep.json
before `run_job` returns or raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from nst_tui.config import OUTPUTS
from nst_tui.engine.events import Placed, Status
from nst_tui.job import folder as sweep_folder
from nst_tui.job.events import (
    BatchStarted,
    CellEvent,
    CellResult,
    JobEvent,
    JobFinished,
    JobResult,
    JobStarted,
    Listener,
    not_run,
)
from nst_tui.job.executor import Executor, executor_named
from nst_tui.job.plan import MAX_BATCH_PIXELS, Batch, Job, cell_folder_name, plan_batches
from nst_tui.preflight import batch_fits, check_inputs
from nst_tui.records import RunRecorder, check_outputs, new_run_folder, write_atomic


def run_job(
    job: Job,
    *,
    out_root: Path = OUTPUTS,
    label: str = "",
    listeners: Sequence[Listener] = (),
    cancel: threading.Event | None = None,
    executor: Executor | None = None,
    max_batch_pixels: int = MAX_BATCH_PIXELS,
    hurry: threading.Event | None = None,
) -> JobResult:
    """Raises NSTError before any folder exists when an input is bad. `hurry` (set by a
    second signal): finish the records without their GIFs."""
    check_outputs(out_root)  # first: a bad outputs folder fails every run, whatever its inputs
    check_inputs(cell.config for cell in job.cells)  # no torch needed: a bad input at once
    job = job.absolute()  # its records name files that any working folder can find
    cancel = cancel or threading.Event()
    hurry = hurry or threading.Event()
    executor = executor or executor_named(job.base.executor, job.base.ray_address)

    def emit(event: JobEvent) -> None:
        for listener in listeners:
            listener(event)

    def status(message: str, fraction: float | None = None) -> None:
        emit(Status(message, fraction))

    executor.check(job, status)
    # Batches split by memory too, planned here for this machine's device; a cluster's
    # workers plan again for their own (job.lifecycle.split_for_memory).
    fits = batch_fits() if executor.name == "local" else None
    batches = plan_batches(job, max_batch_pixels, executor.workers, fits)
    root = new_run_folder(out_root, label or job.name)
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        recorders = _recorders(job, root, batches, label or job.name, hurry)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)  # holding nothing yet: leave no empty husk
        raise
    folders = [r.folder for r in recorders]
    if job.is_sweep:
        sweep_folder.write_plan(job, root, folders, batches)
    emit(JobStarted(job, root, batches))

    placed: list[Placed] = []

    def route(event: JobEvent) -> None:
        if isinstance(event, BatchStarted):  # its cells' records say running from now on
            for i in event.cells:
                recorders[i].begin()
        if isinstance(event, CellEvent):
            if isinstance(event.event, Placed):
                placed.append(event.event)
            recorders[event.cell](event.event)
        emit(event)

    t0 = time.perf_counter()
    try:
        executor.run(job, batches, route, cancel)
    except BaseException as exc:
        _record_the_rest(recorders, exc)
        if job.is_sweep:
            result = _result(job, root, recorders, placed, time.perf_counter() - t0)
            summary = sweep_folder.summary(job, root, folders, batches, result, started, None)
            write_atomic(root / "sweep.json", summary)
        raise
    result = _result(job, root, recorders, placed, time.perf_counter() - t0)
    if job.is_sweep:
        gif = not hurry.is_set()
        emit(Status("drawing sheet.png" + " and sheet.gif" * gif, None))
        sweep_folder.write_sheets(job, result, gif)
        summary = sweep_folder.summary(job, root, folders, batches, result, started, gif)
        write_atomic(root / "sweep.json", summary)
    emit(JobFinished(result))
    return result


def _recorders(
    job: Job, root: Path, batches: Sequence[Batch], label: str, hurry: threading.Event
) -> list[RunRecorder]:
    """One recorder per cell: a single run's is the job's folder; a sweep's cells each get
    a folder inside it."""
    if not job.is_sweep:
        return [RunRecorder(job.cells[0].config, label, root, hurry=hurry)]
    batch_of = {i: (b, batch) for b, batch in enumerate(batches) for i in batch.cells}
    out = []
    for cell in job.cells:
        b, batch = batch_of[cell.index]
        folder = root / cell_folder_name(job, cell)
        folder.mkdir()
        where = {
            "folder": root.name,
            "cell": cell.index,
            "row": cell.row,
            "col": cell.col,
            "batch": b,
            "batch_size": len(batch.cells) if batch.batched else 1,
        }
        info = {"sweep": where}
        out.append(RunRecorder(cell.config, cell.label, folder, info, hurry, waiting=True))
    return out


def _record_the_rest(recorders: Sequence[RunRecorder], exc: BaseException) -> None:
    """Cells the executor never ended: recorded as not run (it raised before their turn),
    or as stopped where they had begun (a Ray worker's cells when the driver raised)."""
    status = "cancelled" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
    why = f"the job stopped ({type(exc).__name__})"
    for recorder in recorders:
        if recorder.result is None:
            end = not_run(status, why)
            if recorder.began:  # it had started (a Ray worker's cell): no canvas came back
                done = int(recorder.rows[-1]["iteration"]) if recorder.rows else 0
                end = dataclasses.replace(end, reason=f"{why} while it ran", iterations_done=done)
            # A record that cannot be written must not hide the error that stopped the job.
            with contextlib.suppress(Exception):
                recorder.finish(end)


def _result(
    job: Job, root: Path, recorders: Sequence[RunRecorder], placed: list[Placed], wall: float
) -> JobResult:
    results = []
    for cell, r in zip(job.cells, recorders, strict=True):
        assert r.result is not None  # every cell's record is finished by now
        results.append(CellResult(cell, r.folder, r.result))
    cells = tuple(results)
    done = sum(c.finished.iterations_done for c in cells)
    statuses = {c.finished.status for c in cells}
    status = next((s for s in ("cancelled", "failed") if s in statuses), "finished")
    where = placed[0] if placed else Placed("", "")
    return JobResult(root, status, cells, wall, done, done / max(wall, 1e-9), where.device,
                     where.backbone)  # fmt: skip
