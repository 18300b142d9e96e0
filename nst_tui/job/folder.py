"""A sweep folder's own files, beside its cells' run folders:

sweep.toml      a preset that reproduces the whole sweep
sweep.json      the plan, then every cell's outcome and the sweep's speed
sheet.png       the final images in the grid, with row and column labels
sheet.gif       the same grid playing over the saved frames
00-content-conv1_1/ ...  one run folder per cell
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from nst_tui import __version__, sheet
from nst_tui.engine.events import Finished
from nst_tui.job.events import JobResult
from nst_tui.job.labels import describe
from nst_tui.job.plan import Batch, Job
from nst_tui.presets import sweep_toml
from nst_tui.records import rate, write_atomic


def write_plan(job: Job, folder: Path, folders: Sequence[Path], batches: Sequence[Batch]) -> None:
    """sweep.toml and the running sweep.json, before the first cell starts."""
    description = f"Reproduces sweep {folder.name}"
    toml = job.base.to_toml(description) + sweep_toml(job.table())
    write_atomic(folder / "sweep.toml", toml.encode())
    write_atomic(folder / "sweep.json", summary(job, folder, folders, batches))


def job_sheet(
    job: Job, finals: Sequence[Sequence[Any]], result: JobResult | None = None
) -> sheet.Sheet:
    """The labelled grid of this sweep, sized for these final images. With the job's
    `result`, a sweep that did not finish says so in its title, and each cell that did
    not finish says where it stopped."""
    name, notes = job.name, dict[tuple[int, int], str]()
    if result is not None and result.status != "finished":
        done = sum(c.finished.status == "finished" for c in result.cells)
        name += f" ({result.status}, {done} of {len(result.cells)} cells finished)"
        notes = {
            (c.row, c.col): stopped_at(result.cells[c.index].finished)
            for c in job.cells
            if result.cells[c.index].finished.status != "finished"
        }
    title = f"{name}: {describe(job.base, [a.field for a in job.axes])}"
    return sheet.sheet_for(finals, job.row_labels, job.col_labels, title, notes)


def stopped_at(fin: Finished) -> str:
    """A cell's caption on the sheet: where it stopped, or that it never started."""
    if not fin.ran:
        return "not run"
    return f"{fin.status} at {fin.iterations_done}"  # iterations: the title says of how many


def write_sheets(job: Job, result: JobResult, gif: bool = True) -> None:
    """sheet.png from the final images, sheet.gif (with `gif`) from each cell's
    animation.gif."""
    grid = job.grid()
    # A cell that never ran has no image: its tile stays grey.
    ends = [[result.cells[c.index].finished for c in row] for row in grid]
    finals = [[f.image if f.ran else None for f in row] for row in ends]
    board = job_sheet(job, finals, result)
    sheet.write_sheet_png(result.folder / "sheet.png", board.render(finals))
    if not gif:
        return
    gifs = [[result.cells[c.index].folder / "animation.gif" for c in row] for row in grid]
    counts = [[_frame_count(result.cells[c.index].folder) for c in row] for row in grid]
    sheet.write_sheet_gif(result.folder / "sheet.gif", board, gifs, counts, finals, job.base.fps)


def _frame_count(folder: Path) -> int:
    try:
        return int(json.loads((folder / "run.json").read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return 0


def summary(
    job: Job,
    folder: Path,
    folders: Sequence[Path],
    batches: Sequence[Batch],
    result: JobResult | None = None,
    started_at: str = "",
    gif: bool | None = True,  # sheet.gif written; None: no sheets at all (the job raised)
) -> bytes:
    """sweep.json: the plan while running; the plan and every outcome once done."""
    batch_of = {i: b for b, batch in enumerate(batches) for i in batch.cells}
    table = job.table()
    cells = []
    for cell, f in zip(job.cells, folders, strict=True):
        entry: dict[str, Any] = {
            "index": cell.index,
            "row": cell.row,
            "col": cell.col,
            "label": cell.label,
            "folder": f.name,
            "values": cell.values,
            "batch": batch_of[cell.index],
        }
        if result is not None:
            fin = result.cells[cell.index].finished
            entry |= {
                "status": fin.status,
                "reason": fin.reason,
                "iterations": cell.config.total_iterations,
                "iterations_done": fin.iterations_done,
                "wall_time_s": round(fin.wall_time, 4),
                "it_per_s": rate(fin.it_per_s),
                "final_losses": fin.losses,
            }
        cells.append(entry)
    batch_entries = []
    for batch in batches:
        entry = {"cells": list(batch.cells), "batched": batch.batched}
        if result is not None:
            ends: list[Finished] = [result.cells[i].finished for i in batch.cells]
            done = sum(f.iterations_done for f in ends)
            # Batched cells run side by side; the others one after another.
            wall = (max if batch.batched else sum)(f.wall_time for f in ends)
            entry |= {
                "cell_iterations": done,
                "wall_time_s": round(wall, 4),
                "cell_it_per_s": round(done / max(wall, 1e-9), 3),
            }
        batch_entries.append(entry)
    out: dict[str, Any] = {
        "name": job.name,
        "folder": folder.name,
        "status": "running" if result is None else result.status,
        "axes": [
            {"field": a.field, "values": list(a.values), "labels": list(a.labels)} for a in job.axes
        ],
        "rows": job.rows,
        "cols": job.cols,
        "row_labels": list(job.row_labels),
        "col_labels": list(job.col_labels),
        "shared": {k: v for k, v in job.base.differences().items() if k not in table},
        "cells": cells,
        "batches": batch_entries,
    }
    if result is not None:
        out |= {
            "device": result.device,
            "backbone": result.backbone,
            "wall_time_s": round(result.wall_time, 4),
            "cell_iterations": result.cell_iterations,
            "cell_it_per_s": rate(result.cell_it_per_s),
            **({"sheet": "sheet.png"} if gif is not None else {}),
            **({"animation": "sheet.gif"} if gif else {}),
            "started_at": started_at,
            "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "nst_tui": __version__,
            "python": platform.python_version(),
        }
    return (json.dumps(out, indent=2) + "\n").encode()
