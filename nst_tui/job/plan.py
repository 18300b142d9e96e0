"""What a job runs, planned without torch: its cells, their labels and which share a batch.

A single run is a job of one cell. A sweep is a preset's `[sweep]` table run as a
grid of cells:

    [sweep]
    optimizer = ["adam", "lbfgs"]            # rows
    content_layers = [[0], [1], [2], [3], [4]]  # columns

Each key is a Config field and each value a list of that field's values; the job is
every combination. One key gives a single row; with two or more, the last key runs
along the columns and the others (combined) down the rows.

Adam cells that share the network and the canvas shape run as one batch (one
forward and backward for all their canvases); L-BFGS and multi-scale cells, and
cells alone in their group, run one by one, exactly as a single run would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nst_tui.config import (
    BATCH_FIELDS,
    JOB_FIELDS,
    TUPLE_FIELDS,
    Config,
    absolute_paths,
    job_field_message,
)
from nst_tui.errors import ConfigError
from nst_tui.job.labels import value_label
from nst_tui.text import safe_label

MAX_CELLS = 256  # beyond this a sheet is unreadable and a typo in a list is the likelier cause
MAX_BATCH_PIXELS = 1 << 20  # canvas pixels per batch (16 at 256 px): activations fit in a few GB


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
class Job:
    """Cells to run and how they sit in a table. A single run is a job of one cell and no
    axes; a sweep's cells are every combination of its axes' values."""

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

    @property
    def is_sweep(self) -> bool:
        return bool(self.axes)

    @property
    def total_iterations(self) -> int:
        return sum(c.config.total_iterations for c in self.cells)

    def grid(self) -> list[list[Cell]]:
        return [list(self.cells[r * self.cols : (r + 1) * self.cols]) for r in range(self.rows)]

    def absolute(self) -> Job:
        """This job with every relative path made absolute from the working folder
        (Config.absolute): what its records write, so they reproduce it from anywhere."""
        table = self.table()
        fixed_table = absolute_paths(table, each=True)
        base = self.base.absolute()
        if base is self.base and fixed_table == table:
            return self
        return job_for(base, fixed_table or None, self.name)


def expand(base: Config, table: dict[str, list[Any]], name: str = "sweep") -> Job:
    """Every combination of the table's values over `base`, validated cell by cell.

    Raises ConfigError naming `sweep.FIELD` for a bad value or `sweep` for the table.
    """
    if not table:
        raise ConfigError({"sweep": "is empty: give at least one field = [values]"})
    axes_values: list[tuple[str, list[Any]]] = []
    for field, values in table.items():
        axes_values.append((field, _coerce_axis(base, field, values)))
    n = 1
    for _, axis in axes_values:
        n *= len(axis)
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
        chosen = {a.field: a.values[i] for a, i in zip(axes, combo, strict=True)}
        label = ", ".join(a.labels[i] for a, i in zip(axes, combo, strict=True))
        try:
            cfg = Config.from_dict({**base.to_dict(), **chosen})
        except ConfigError as exc:
            errors = {(f"sweep.{k}" if k in chosen else k): v for k, v in exc.errors.items()}
            raise ConfigError(errors, f"sweep cell {label!r}") from None
        cells.append(Cell(index, index // cols, index % cols, label, chosen, cfg))
    row_axes = axes[:-1]
    row_labels = [
        ", ".join(a.labels[i] for a, i in zip(row_axes, combo, strict=True))
        for combo in itertools.product(*(range(len(a.values)) for a in row_axes))
    ]
    return Job(
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
    if field in JOB_FIELDS:
        raise ConfigError({key: job_field_message(field)})
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


def single(cfg: Config, name: str = "run") -> Job:
    """A job of one cell: `cfg` run once."""
    return Job(name, cfg, (), (Cell(0, 0, 0, name, {}, cfg),), 1, 1, ("",), ("",))


def job_for(base: Config, table: dict[str, list[Any]] | None, name: str) -> Job:
    """A sweep of `table` over `base`, or a single run when there is no table."""
    return expand(base, table, name) if table else single(base, name)


# ---- batches ---------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    cells: tuple[int, ...]  # cell indices, run together when `batched`, else one by one
    batched: bool


def batch_key(cfg: Config) -> tuple[object, ...]:
    """Cells with equal keys can share a batch (same network, precision, canvas shape):
    the fields declared with splits_batch=True."""
    return tuple(getattr(cfg, name) for name in BATCH_FIELDS)


def plan_batches(
    job: Job,
    max_pixels: int = MAX_BATCH_PIXELS,
    workers: int = 1,
    fits: Callable[[Sequence[Config]], bool] | None = None,
) -> tuple[Batch, ...]:
    """Adam cells sharing network and canvas shape form batches (split to fit `max_pixels`
    and the memory budget, in cell order); the rest (L-BFGS, multi-scale) run alone, in
    cell order, after them.

    `fits(configs)`: whether one batch of these cells fits its memory budget untiled
    (preflight.batch_fits); None: pixels only, as on a cluster, whose workers split a batch
    again for their own device (job.lifecycle).
    `workers` > 1 (a cluster): a group that would make fewer batches than that is split
    into `workers` batches as even as its cells allow, so every worker gets one."""
    groups: dict[tuple[object, ...], list[int]] = {}
    alone: list[int] = []
    for cell in job.cells:
        if cell.config.optimizer == "adam" and not cell.config.scales:
            groups.setdefault(batch_key(cell.config), []).append(cell.index)
        else:
            alone.append(cell.index)
    batches: list[Batch] = []
    for members in groups.values():
        size = job.cells[members[0]].config.size
        per_batch = max(1, max_pixels // (size * size))
        n = len(members)
        chunks = [tuple(members[s : s + per_batch]) for s in range(0, n, per_batch)]
        if fits is not None:
            chunks = [part for chunk in chunks for part in _by_memory(job, chunk, fits)]
        if workers > len(chunks):
            parts = min(workers, n)
            bounds = [n * k // parts for k in range(parts + 1)]
            chunks = [tuple(members[a:b]) for a, b in itertools.pairwise(bounds)]
        for chunk in chunks:
            if len(chunk) == 1:
                alone.append(chunk[0])
            else:
                batches.append(Batch(chunk, True))
    batches.sort(key=lambda b: b.cells[0])
    batches += [Batch((i,), False) for i in sorted(alone)]
    return tuple(batches)


def _by_memory(
    job: Job, cells: tuple[int, ...], fits: Callable[[Sequence[Config]], bool]
) -> list[tuple[int, ...]]:
    """`cells` cut, in order, into batches that each fit the memory budget (a cell that
    does not fit even alone is a batch of one: it runs alone, in tiles if it must)."""
    out: list[tuple[int, ...]] = []
    current: list[int] = []
    for i in cells:
        if current and not fits([job.cells[k].config for k in [*current, i]]):
            out.append(tuple(current))
            current = []
        current.append(i)
    if current:
        out.append(tuple(current))
    return out


def cell_folder_name(job: Job, cell: Cell) -> str:
    width = max(2, len(str(len(job.cells) - 1)))
    return f"{cell.index:0{width}d}-{safe_label(cell.label)}"
