"""What one dashboard session holds apart from its widgets: its jobs, the running one,
the preset the form started from and the loaded sweep table.

Plain Python with no Textual in it: the App routes keys and messages here and draws
what comes back, and the tests drive a Session on its own (tests/unit/test_session.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from nst_tui.config import Config
from nst_tui.errors import NSTError
from nst_tui.job.events import JobResult
from nst_tui.job.plan import job_for
from nst_tui.job.stop import escalate
from nst_tui.tui.history_row import HistoryRow
from nst_tui.tui.job_state import JobState, table_summary

SweepTable = dict[str, list[Any]]


class Refused(NSTError):
    """What the user asked cannot be done now; the message says why, for a notification."""


@dataclass
class ActiveJob:
    state: JobState
    cancel: threading.Event
    started: float
    hurry: threading.Event = field(default_factory=threading.Event)  # records without GIFs
    began: threading.Event = field(default_factory=threading.Event)  # set by the worker thread
    ended: threading.Event = field(default_factory=threading.Event)  # set by the worker thread
    result: JobResult | None = None  # set by the worker thread, with what it recorded


class Session:
    """This dashboard's runs and sweeps by run id, the one running, and what the next run
    starts from: the preset's name and values, and a sweep table turned on or off."""

    def __init__(self, preset_name: str, preset_config: Config, sweep: SweepTable | None) -> None:
        self.jobs: dict[int, JobState] = {}
        self.active: ActiveJob | None = None
        self.preset_name = preset_name
        self.preset_config = preset_config
        self.sweep_table: SweepTable | None = None
        self.sweep_on = False
        self.set_sweep(sweep)

    # ---- what the next run starts from ---------------------------------------------
    # A preset with a `[sweep]` table loads its base values into the form and keeps the
    # table; ctrl+r then runs every cell over the form's values. A swept field stays
    # swept: the form's value for it is replaced in each cell. ctrl+g turns the sweep off
    # (ctrl+r runs the form once) and on.
    def load(self, name: str, config: Config, sweep: SweepTable | None = None) -> None:
        self.preset_name, self.preset_config = name, config
        self.set_sweep(sweep)

    def set_sweep(self, table: SweepTable | None) -> None:
        """Keep `table` and turn it on (None or an empty table drops it)."""
        self.sweep_table = table or None
        self.sweep_on = self.sweep_table is not None

    def toggle_sweep(self) -> bool:
        """Turn the loaded table off or back on; returns whether it is on now."""
        self.sweep_on = self.sweep_table is not None and not self.sweep_on
        return self.sweep_on

    @property
    def table(self) -> SweepTable | None:
        """The table the next run sweeps: the loaded one while it is on."""
        return self.sweep_table if self.sweep_on else None

    # ---- jobs ------------------------------------------------------------------------
    def start(self, config: Config, table: SweepTable | None, label: str, base: Config) -> JobState:
        """A new job of `config` (every cell of `table` over it), now the active one.
        Raises `Refused` while another runs, ConfigError for a table that does not fit."""
        if self.active is not None:
            raise Refused("A run is in progress; escape cancels it.")
        job = job_for(config, table, label)
        run_id = max(self.jobs, default=0) + 1
        summary = table_summary(table) if table else ""
        changes = {k: v for k, v in config.differences(base).items() if k not in (table or {})}
        row = HistoryRow(run_id, label, config, base, changes, sweep=table, summary=summary)
        state = JobState(row, job, summary)
        self.jobs[run_id] = state
        self.active = ActiveJob(state, threading.Event(), time.monotonic())
        return state

    def mine(self, job_id: int) -> JobState | None:
        """The running job's state, if `job_id` is it (news of an ended job is dropped)."""
        active = self.active
        return active.state if active is not None and active.state.run_id == job_id else None

    def stop(self) -> str | None:
        """The next step of stopping the running job (nst_tui/job/stop.py): the same policy
        as the CLI's; None when nothing runs."""
        return escalate(self.active.cancel, self.active.hurry) if self.active else None

    def ended(self, result: JobResult) -> JobState:
        """The worker returned with every cell finished, cancelled or failed."""
        assert self.active is not None
        state = self.active.state
        state.finish(result)
        self.active = None
        return state

    def failed(self, error: BaseException | None) -> tuple[JobState, str]:
        """The job never got going (a bad image, missing weights) or crashed: its row says
        so; returns it and the reason, said for the user."""
        assert self.active is not None
        state, row = self.active.state, self.active.state.record
        state.stop_waiting("failed")
        if error is None:
            text = "the worker was stopped"
        elif isinstance(error, NSTError):
            text = str(error)  # written for the user already
        else:
            text = f"{type(error).__name__}: {error}"
        row.status, row.reason = "failed", text
        row.wall_time = time.monotonic() - self.active.started
        self.active = None
        return state, text

    # ---- the history's requests --------------------------------------------------------
    def viewable(self, run_id: int) -> JobState | None:
        """The job a highlighted history row brings back to the canvas pane, when it has a
        picture and nothing runs."""
        job = self.jobs.get(run_id)
        if job is None or self.active is not None or not job.viewable:
            return None
        return job

    def continued(self, run_id: int) -> Config:
        """Run `run_id`'s config, starting from its final image."""
        row = self.jobs[run_id].record
        if row.sweep is not None or row.folder is None:
            raise Refused("only a single run with a folder can be continued")
        folder = row.folder.resolve()  # recorded and shown absolute, as a typed path
        return row.config.replace(init=f"run:{folder}")

    def comparable(self, pair: tuple[int, int] | None) -> tuple[JobState, JobState]:
        """The two jobs of a comparison; `Refused` says why they cannot be compared."""
        if pair is None:
            raise Refused("Mark a run with m, highlight another (or mark it too), then press c.")
        states = self.jobs[pair[0]], self.jobs[pair[1]]
        for state in states:
            if state.record.sweep is not None:
                why = "is a sweep: its cells are in its folder's sheet"
            elif self.active is not None and state is self.active.state:
                why = "is still running"
            else:
                continue
            raise Refused(f"run {state.run_id} {why}")
        return states
