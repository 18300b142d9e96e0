"""Sweeps: a preset's `[sweep]` table run as a grid of cells, recorded in one folder.

    [sweep]
    optimizer = ["adam", "lbfgs"]            # rows
    content_layers = [[0], [1], [2], [3], [4]]  # columns

Each key is a Config field and each value a list of that field's values; the run is
every combination. One key gives a single row; with two or more, the last key runs
along the columns and the others (combined) down the rows.

Cells that can share the network and canvas shape and use Adam run as one batch
(engine.batch); L-BFGS and multi-scale cells, and cells alone in their group, run one
after another exactly as a single run would. Either way each cell writes an ordinary run folder
(its config.toml reproduces it alone) inside the sweep folder:

    sweep.toml      a preset that reproduces the whole sweep
    sweep.json      the plan, then every cell's outcome and the sweep's speed
    sheet.png       the final images in the grid, with row and column labels
    sheet.gif       the same grid playing over the saved frames
    00-content-conv1_1/ ...  one run folder per cell

Listeners get `SweepStarted`, `BatchStarted`, `CellEvent` (an engine event of one
cell, by index) and `SweepFinished`, plus engine `Status` messages, all from the
thread that calls `run_sweep`.
"""

from __future__ import annotations

import itertools
import json
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from nst_tui import __version__
from nst_tui.config import INITS, RUN_INIT, TUPLE_FIELDS, Config
from nst_tui.engine.events import Event, Finished, Progress, Status
from nst_tui.errors import ConfigError
from nst_tui.presets import sweep_toml

MAX_CELLS = 256  # beyond this a sheet is unreadable and a typo in a list is the likelier cause
MAX_BATCH_PIXELS = 1 << 20  # canvas pixels per batch (16 at 256 px): activations fit in a few GB
DEFAULT_OUTPUTS = Path("outputs")


# ---- labels ----------------------------------------------------------------------


def layers_label(kind: str, layers: Sequence[int], layer_type: str | None) -> str:
    """`content conv2_1`, `style conv1_1+conv2_1`; `content 2_1` when the type is swept."""
    if not layers:
        return f"no {kind}"
    prefix = layer_type or ""
    return f"{kind} " + "+".join(f"{prefix}{i + 1}_1" for i in layers)


def value_label(field: str, value: Any, layer_type: str | None = "conv") -> str:
    """A short heading for one value of a swept field."""
    if field in ("content_layers", "style_layers"):
        return layers_label(field.split("_")[0], value, layer_type)
    if field in ("optimizer", "layer_type", "device"):
        return str(value)
    if field == "pooling":
        return f"{value} pool"
    if field == "mode":
        return "reconstruct" if value == "reconstruct" else f"visualize {value}"
    if field == "init" and value.startswith(RUN_INIT):
        return f"init run {_stem(value[len(RUN_INIT) :])}"
    if field == "init":
        return f"init {value if value in INITS else _stem(value)}"
    if field in ("content_image", "style_image"):
        return f"{field.split('_')[0]} {_stem(value)}"
    if field == "backbone":
        return _stem(value) if value.endswith((".pth", ".pt")) else value
    if field == "style_weights":
        return "style weights " + ",".join(f"{w:g}" for w in value)
    if isinstance(value, bool):
        return f"{field.replace('_', ' ')} {'on' if value else 'off'}"
    if isinstance(value, float):
        return f"{field} {value:g}"
    return f"{field} {value}"


def _stem(spec: str) -> str:
    return Path(spec.removeprefix("builtin:")).stem or spec


def describe(cfg: Config, skip: Sequence[str] = ()) -> str:
    """One line naming what every cell shares (images, size, length, method)."""
    parts = []
    if "content_image" not in skip and "style_image" not in skip:
        parts.append(f"{_stem(cfg.content_image)} / {_stem(cfg.style_image)}")
    for field, text in (
        ("size", f"{cfg.size} px"),
        ("iterations", f"{cfg.iterations} it"),
        ("optimizer", cfg.optimizer),
        ("init", value_label("init", cfg.init)),
        ("mode", value_label("mode", cfg.mode)),
        ("backbone", cfg.backbone),
    ):
        if field not in skip:
            parts.append(text)
    return " · ".join(parts)


# ---- the grid --------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    field: str
    values: tuple[Any, ...]  # as Config.to_dict() writes them (lists for tuple fields)
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    index: int  # row-major: index = row * cols + col
    row: int
    col: int
    label: str  # "lbfgs, content conv2_1"
    values: dict[str, Any]  # the swept fields' values for this cell
    config: Config  # the whole config: run alone, it reproduces the cell


@dataclass(frozen=True)
class Sweep:
    name: str
    base: Config  # what every cell starts from (the preset with --set applied)
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    rows: int
    cols: int
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]

    def table(self) -> dict[str, list[Any]]:
        """The [sweep] table that expands to this sweep."""
        return {a.field: list(a.values) for a in self.axes}

    def grid(self) -> list[list[Cell]]:
        return [list(self.cells[r * self.cols : (r + 1) * self.cols]) for r in range(self.rows)]


def expand(base: Config, table: dict[str, list[Any]], name: str = "sweep") -> Sweep:
    """Every combination of the table's values over `base`, validated cell by cell.

    Raises ConfigError naming `sweep.FIELD` for a bad value or `sweep` for the table.
    """
    if not table:
        raise ConfigError({"sweep": "is empty: give at least one field = [values]"})
    axes_values: list[tuple[str, list[Any]]] = []
    for field, values in table.items():
        axes_values.append((field, _coerce_axis(base, field, values)))
    n = 1
    for _, values in axes_values:
        n *= len(values)
    if n > MAX_CELLS:
        raise ConfigError({"sweep": f"makes {n} cells; at most {MAX_CELLS} are allowed"})
    layer_type = None if "layer_type" in table else base.layer_type
    axes = tuple(
        Axis(f, tuple(vs), tuple(value_label(f, v, layer_type) for v in vs))
        for f, vs in axes_values
    )
    cols = len(axes[-1].values)
    cells = []
    for index, combo in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        values = {a.field: a.values[i] for a, i in zip(axes, combo, strict=True)}
        label = ", ".join(a.labels[i] for a, i in zip(axes, combo, strict=True))
        try:
            cfg = Config.from_dict({**base.to_dict(), **values})
        except ConfigError as exc:
            errors = {(f"sweep.{k}" if k in values else k): v for k, v in exc.errors.items()}
            raise ConfigError(errors, f"sweep cell {label!r}") from None
        cells.append(Cell(index, index // cols, index % cols, label, values, cfg))
    row_axes = axes[:-1]
    row_labels = [
        ", ".join(a.labels[i] for a, i in zip(row_axes, combo, strict=True))
        for combo in itertools.product(*(range(len(a.values)) for a in row_axes))
    ]
    return Sweep(
        name=name,
        base=base,
        axes=axes,
        cells=tuple(cells),
        rows=len(cells) // cols,
        cols=cols,
        row_labels=tuple(row_labels),
        col_labels=axes[-1].labels,
    )


def _coerce_axis(base: Config, field: str, values: Any) -> list[Any]:
    key = f"sweep.{field}"
    if not isinstance(values, list) or not values:
        raise ConfigError({key: "must be a non-empty list of values"})
    if field in TUPLE_FIELDS and not all(isinstance(v, list) for v in values):
        example = "[[0], [1], [1, 3, 4]]" if field.endswith("layers") else "[[...], [...]]"
        raise ConfigError({key: f"each value is itself a list, e.g. {field} = {example}"})
    out: list[Any] = []
    for value in values:
        try:
            coerced = Config.from_dict({**base.to_dict(), field: value}).to_dict()[field]
        except ConfigError:
            # Checked in its cells instead: a value may fail only beside the base's other
            # fields (style_layers = [] with mode reconstruct) and be fine in its own cells.
            coerced = value
        if coerced in out:
            raise ConfigError({key: f"lists {value!r} twice"})
        out.append(coerced)
    return out


def without(table: dict[str, list[Any]], fixed: Sequence[str]) -> dict[str, list[Any]]:
    """The table less the fields fixed elsewhere (by --set): those apply to every cell."""
    return {k: v for k, v in table.items() if k not in fixed}


# ---- batches ---------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    cells: tuple[int, ...]  # cell indices, run together when `batched`, else one by one
    batched: bool


def plan_batches(sweep: Sweep, max_pixels: int = MAX_BATCH_PIXELS) -> tuple[Batch, ...]:
    """Adam cells sharing network and canvas shape form batches (split to fit `max_pixels`,
    in cell order); the rest (L-BFGS, multi-scale) run alone, in cell order, after them."""
    from nst_tui.engine.batch import batch_key  # torch only once a sweep runs

    groups: dict[tuple[object, ...], list[int]] = {}
    alone: list[int] = []
    for cell in sweep.cells:
        if cell.config.optimizer == "adam" and not cell.config.scales:
            groups.setdefault(batch_key(cell.config), []).append(cell.index)
        else:
            alone.append(cell.index)
    batches: list[Batch] = []
    for members in groups.values():
        size = sweep.cells[members[0]].config.size
        per_batch = max(1, max_pixels // (size * size))
        for start in range(0, len(members), per_batch):
            chunk = tuple(members[start : start + per_batch])
            if len(chunk) == 1:
                alone.append(chunk[0])
            else:
                batches.append(Batch(chunk, True))
    batches.sort(key=lambda b: b.cells[0])
    batches += [Batch((i,), False) for i in sorted(alone)]
    return tuple(batches)


# ---- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepStarted:
    sweep: Sweep
    folder: Path
    batches: tuple[Batch, ...]


@dataclass(frozen=True)
class BatchStarted:
    batch: int  # index into SweepStarted.batches
    cells: tuple[int, ...]
    batched: bool


@dataclass(frozen=True)
class CellEvent:
    """An engine event (Status, Progress, Frame, Finished) of cell `cell`."""

    cell: int
    event: Event


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    folder: Path
    finished: Finished
    batch: int


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    status: str  # finished | cancelled | failed (some cell diverged or ran out of memory)
    cells: tuple[CellResult, ...]
    wall_time: float  # seconds from the first batch to the last
    cell_iterations: int
    cell_it_per_s: float  # every cell's iterations, over wall_time
    device: str
    backbone: str


@dataclass(frozen=True)
class SweepFinished:
    result: SweepResult


SweepEvent = Status | SweepStarted | BatchStarted | CellEvent | SweepFinished
Listener = Callable[[SweepEvent], None]


class SweepProgress:
    """Folds cell events into one count, for a single progress bar over the sweep."""

    def __init__(self, sweep: Sweep) -> None:
        self.total = sum(c.config.total_iterations for c in sweep.cells)
        self.done = [0] * len(sweep.cells)
        self.start = time.perf_counter()

    def update(self, event: SweepEvent) -> bool:
        """True when the count changed."""
        if isinstance(event, CellEvent) and isinstance(event.event, Progress | Finished):
            ev = event.event
            done = ev.iteration if isinstance(ev, Progress) else ev.iterations_done
            if done != self.done[event.cell]:
                self.done[event.cell] = done
                return True
        return False

    @property
    def completed(self) -> int:
        return sum(self.done)

    def rate(self) -> float:
        """Cell-iterations per second since the sweep started."""
        return self.completed / max(time.perf_counter() - self.start, 1e-9)


# ---- running ---------------------------------------------------------------------


def cell_folder_name(sweep: Sweep, cell: Cell) -> str:
    from nst_tui.records import safe_label

    width = max(2, len(str(len(sweep.cells) - 1)))
    return f"{cell.index:0{width}d}-{safe_label(cell.label)}"


def run_sweep(
    sweep: Sweep,
    *,
    out_root: Path = DEFAULT_OUTPUTS,
    label: str = "",
    listeners: Sequence[Listener] = (),
    cancel: threading.Event | None = None,
    max_batch_pixels: int = MAX_BATCH_PIXELS,
) -> SweepResult:
    """Run every cell and write the sweep folder. Raises NSTError before anything is
    written when an input is bad; a cancel ends every cell (each record says so)."""
    from nst_tui.engine.prepare import (
        get_backbone,
        load_extra_styles,
        load_inputs,
        resolve_device,
    )
    from nst_tui.engine.scales import scale_configs
    from nst_tui.records import new_run_folder, write_atomic

    cancel = cancel or threading.Event()

    def emit(event: SweepEvent) -> None:
        for listener in listeners:
            listener(event)

    # Every cell's device, images and weights, before a folder exists.
    checked: set[tuple[object, ...]] = set()
    for cell in sweep.cells:
        cfg = scale_configs(cell.config)[0]  # the smallest scale: the likeliest to fail
        key = (cfg.device, cfg.content_image, cfg.style_image, cfg.style_images, cfg.init, cfg.size)
        if key not in checked:
            checked.add(key)
            load_inputs(cfg, resolve_device(cfg.device))
            load_extra_styles(cfg, resolve_device(cfg.device))
    for name in dict.fromkeys(c.config.backbone for c in sweep.cells):
        get_backbone(name, lambda msg, frac=None: emit(Status(msg, frac)))

    batches = plan_batches(sweep, max_batch_pixels)
    folder = new_run_folder(out_root, label or sweep.name)
    description = f"Reproduces sweep {folder.name}"
    write_atomic(
        folder / "sweep.toml",
        (sweep.base.to_toml(description) + sweep_toml(sweep.table())).encode(),
    )
    folders = [folder / cell_folder_name(sweep, c) for c in sweep.cells]
    for f in folders:
        f.mkdir()
    started = datetime.now().astimezone()
    write_atomic(folder / "sweep.json", _summary(sweep, folder, folders, batches, {}, None))
    emit(SweepStarted(sweep, folder, batches))

    runner = _CellRunner(sweep, folder, folders, emit, cancel)
    t0 = time.perf_counter()
    for b, batch in enumerate(batches):
        emit(BatchStarted(b, batch.cells, batch.batched))
        runner.run(b, batch)
    wall = time.perf_counter() - t0

    results = tuple(runner.results[i] for i in range(len(sweep.cells)))
    cell_its = sum(r.finished.iterations_done for r in results)
    statuses = {r.finished.status for r in results}
    status = (
        "cancelled" if "cancelled" in statuses else "failed" if "failed" in statuses else "finished"
    )
    result = SweepResult(
        folder,
        status,
        results,
        wall,
        cell_its,
        cell_its / max(wall, 1e-9),
        runner.device,
        runner.backbone,
    )
    emit(Status("drawing sheet.png and sheet.gif", None))
    write_sheets(sweep, result)
    extra = {"started_at": started.isoformat(timespec="seconds")}
    write_atomic(folder / "sweep.json", _summary(sweep, folder, folders, batches, extra, result))
    emit(SweepFinished(result))
    return result


class _CellRunner:
    """Prepares, records and optimizes the cells of one batch at a time."""

    def __init__(
        self,
        sweep: Sweep,
        folder: Path,
        folders: list[Path],
        emit: Callable[[SweepEvent], None],
        cancel: threading.Event,
    ) -> None:
        self.sweep = sweep
        self.folder = folder
        self.folders = folders
        self.emit = emit
        self.cancel = cancel
        self.results: dict[int, CellResult] = {}
        self.device = ""
        self.backbone = ""

    def run(self, b: int, batch: Batch) -> None:
        from nst_tui.engine.batch import BatchCell, optimize_batch, shared_extractor
        from nst_tui.engine.prepare import prepare
        from nst_tui.engine.scales import optimize_scales, scale_configs

        cells: list[BatchCell] = []
        for i in batch.cells:
            cell = self.sweep.cells[i]
            prepared = prepare(scale_configs(cell.config)[0], self._cell_status(i))
            self.device, self.backbone = str(prepared.device), prepared.backbone.name
            emit = self._recorded(b, batch, cell, prepared)
            if batch.batched:
                cells.append(BatchCell.from_objective(prepared.objective, prepared.canvas, emit))
                backbone, device = prepared.backbone, prepared.device
            else:
                fin = optimize_scales(
                    prepared, cell.config, emit, self.cancel, self._cell_status(i)
                )
                self._done(b, i, fin)
            del prepared  # a batched cell keeps its targets only; its network goes
        if cells:
            extractor = shared_extractor(backbone, [c.cfg for c in cells], device)
            finished = optimize_batch(extractor, cells, self.cancel)
            for i, fin in zip(batch.cells, finished, strict=True):
                self._done(b, i, fin)

    def _cell_status(self, i: int) -> Callable[[str, float | None], None]:
        return lambda msg, frac=None: self.emit(CellEvent(i, Status(msg, frac)))

    def _recorded(self, b: int, batch: Batch, cell: Cell, prepared: Any) -> Callable[[Event], None]:
        from nst_tui.records import RunRecorder

        info = {
            "device": str(prepared.device),
            "backbone": prepared.backbone.name,
            "backbone_source": prepared.backbone.source,
            "sweep": {
                "folder": self.folder.name,
                "cell": cell.index,
                "row": cell.row,
                "col": cell.col,
                "batch": b,
                "batch_size": len(batch.cells) if batch.batched else 1,
            },
        }
        recorder = RunRecorder(
            self.folder, cell.config, cell.label, info, folder=self.folders[cell.index]
        )

        def emit(event: Event) -> None:
            recorder(event)
            self.emit(CellEvent(cell.index, event))

        return emit

    def _done(self, b: int, i: int, fin: Finished) -> None:
        self.results[i] = CellResult(self.sweep.cells[i], self.folders[i], fin, b)


# ---- the sweep folder's own files ---------------------------------------------------------


def sweep_sheet(sweep: Sweep, finals: Sequence[Sequence[Any]]) -> Any:
    """The labelled grid of this sweep (a sheet.Sheet), sized for these final images."""
    from nst_tui import sheet

    title = f"{sweep.name}: {describe(sweep.base, [a.field for a in sweep.axes])}"
    return sheet.sheet_for(finals, sweep.row_labels, sweep.col_labels, title)


def write_sheets(sweep: Sweep, result: SweepResult) -> None:
    """sheet.png from the final images, sheet.gif from each cell's animation.gif."""
    from nst_tui import sheet

    grid = sweep.grid()
    finals = [[result.cells[c.index].finished.image for c in row] for row in grid]
    board = sweep_sheet(sweep, finals)
    sheet.write_sheet_png(result.folder / "sheet.png", board.render(finals))
    gifs = [[result.cells[c.index].folder / "animation.gif" for c in row] for row in grid]
    counts = [[_frame_count(result.cells[c.index].folder) for c in row] for row in grid]
    sheet.write_sheet_gif(result.folder / "sheet.gif", board, gifs, counts, finals, sweep.base.fps)


def _frame_count(folder: Path) -> int:
    try:
        return int(json.loads((folder / "run.json").read_text())["frames"])
    except (OSError, ValueError, KeyError):
        return 0


def _summary(
    sweep: Sweep,
    folder: Path,
    folders: list[Path],
    batches: Sequence[Batch],
    extra: dict[str, Any],
    result: SweepResult | None,
) -> bytes:
    """sweep.json: the plan while running; the plan and every outcome once done."""
    batch_of = {i: b for b, batch in enumerate(batches) for i in batch.cells}
    table = sweep.table()
    cells = []
    for cell, f in zip(sweep.cells, folders, strict=True):
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
                "iterations": cell.config.iterations,
                "iterations_done": fin.iterations_done,
                "wall_time_s": round(fin.wall_time, 4),
                "it_per_s": round(fin.it_per_s, 3),
                "final_losses": fin.losses,
            }
        cells.append(entry)
    batch_entries = []
    for batch in batches:
        entry = {"cells": list(batch.cells), "batched": batch.batched}
        if result is not None:
            done = sum(result.cells[i].finished.iterations_done for i in batch.cells)
            wall = max(result.cells[i].finished.wall_time for i in batch.cells)
            if not batch.batched:
                wall = sum(result.cells[i].finished.wall_time for i in batch.cells)
            entry |= {
                "cell_iterations": done,
                "wall_time_s": round(wall, 4),
                "cell_it_per_s": round(done / max(wall, 1e-9), 3),
            }
        batch_entries.append(entry)
    summary: dict[str, Any] = {
        "name": sweep.name,
        "folder": folder.name,
        "status": "running" if result is None else result.status,
        "axes": [
            {"field": a.field, "values": list(a.values), "labels": list(a.labels)}
            for a in sweep.axes
        ],
        "rows": sweep.rows,
        "cols": sweep.cols,
        "row_labels": list(sweep.row_labels),
        "col_labels": list(sweep.col_labels),
        "shared": {k: v for k, v in sweep.base.differences().items() if k not in table},
        "cells": cells,
        "batches": batch_entries,
    }
    if result is not None:
        summary |= {
            "device": result.device,
            "backbone": result.backbone,
            "wall_time_s": round(result.wall_time, 4),
            "cell_iterations": result.cell_iterations,
            "cell_it_per_s": round(result.cell_it_per_s, 3),
            "sheet": "sheet.png",
            "animation": "sheet.gif",
            **extra,
            "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "nst_tui": __version__,
            "python": platform.python_version(),
        }
    return (json.dumps(summary, indent=2) + "\n").encode()
