"""One row of the run history: a run (or sweep) of this session, as the table shows it.

Plain data, no widget: the job state keeps one per job and the history widget draws it.
(Not a run *record*: that is the run folder on disk, nst_tui/records.py.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst_tui.config import Config
from nst_tui.tui.news import LossRow


@dataclass
class HistoryRow:
    run_id: int
    label: str  # the preset the form started from
    config: Config
    base: Config  # that preset's config
    changes: dict[str, Any]  # fields that differ from it
    status: str = "running"
    losses: dict[str, float] = field(default_factory=dict)
    wall_time: float | None = None
    folder: Path | None = None
    reason: str = ""
    sweep: dict[str, list[Any]] | None = None  # the [sweep] table when this row is a sweep
    summary: str = ""  # that table in a few words
    rows: list[LossRow] = field(default_factory=list)  # every logged point, for comparing
