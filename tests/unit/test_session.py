"""The dashboard's session, driven without Textual: jobs by run id, one running at a time,
the stop policy the CLI uses, the loaded sweep table, and what the history may ask."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nst_tui.config import Config
from nst_tui.errors import ConfigError, ImageError
from nst_tui.job.stop import CANCEL, HURRY, NOW
from nst_tui.tui.session import Refused, Session

STUDY = Config()
TABLE = {"lr": [0.01, 0.1]}


def test_the_session_module_loads_neither_textual_nor_torch() -> None:
    code = (
        "import sys, nst_tui.tui.session; "
        "print(sorted(m for m in ('textual', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_job_starts_numbered_and_a_second_waits_for_it() -> None:
    session = Session("study", STUDY, None)
    first = session.start(STUDY.replace(lr=0.1), None, "study", STUDY)
    assert (first.run_id, first.is_sweep, first.unit) == (1, False, "it")
    assert first.record.changes == {"lr": 0.1} and session.active is not None
    assert session.mine(1) is first and session.mine(2) is None
    with pytest.raises(Refused, match="in progress"):
        session.start(STUDY, None, "study", STUDY)
    state, why = session.failed(ImageError("content: no such file"))
    assert state is first and session.active is None
    assert (first.record.status, why) == ("failed", "content: no such file")
    assert [c.status for c in first.cells] == ["failed"]
    second = session.start(STUDY, TABLE, "study", STUDY)
    assert (second.run_id, second.is_sweep, second.unit) == (2, True, "cell-it")
    assert second.what == "Sweep 2" and len(second.cells) == 2


def test_an_unexpected_error_is_named_with_its_type() -> None:
    session = Session("study", STUDY, None)
    session.start(STUDY, None, "study", STUDY)
    _, why = session.failed(RuntimeError("boom"))
    assert why == "RuntimeError: boom"
    session.start(STUDY, None, "study", STUDY)
    assert session.failed(None)[1] == "the worker was stopped"


def test_a_table_that_does_not_fit_starts_nothing() -> None:
    session = Session("study", STUDY, None)
    with pytest.raises(ConfigError):
        session.start(STUDY, {"lr": [-1.0]}, "study", STUDY)
    assert session.active is None and session.jobs == {}


def test_stopping_escalates_as_the_cli_does() -> None:
    session = Session("study", STUDY, None)
    assert session.stop() is None
    session.start(STUDY, None, "study", STUDY)
    assert [session.stop(), session.stop(), session.stop()] == [CANCEL, HURRY, NOW]
    assert session.active is not None and session.active.hurry.is_set()


def test_the_sweep_table_turns_off_and_on_and_drops_on_load() -> None:
    session = Session("grid", STUDY, TABLE)
    assert session.table == TABLE and session.sweep_on
    assert session.toggle_sweep() is False and session.table is None
    assert session.sweep_table == TABLE  # kept while off
    assert session.toggle_sweep() is True and session.table == TABLE
    session.load("study", STUDY)
    assert (session.sweep_table, session.sweep_on, session.preset_name) == (None, False, "study")
    assert session.toggle_sweep() is False  # nothing to turn on
    session.set_sweep({})
    assert session.table is None


def test_the_history_may_bring_back_continue_and_compare_only_what_makes_sense(
    tmp_path: Path,
) -> None:
    session = Session("study", STUDY, None)
    run = session.start(STUDY, None, "study", STUDY)
    assert session.viewable(1) is None  # running, and no picture yet
    with pytest.raises(Refused, match="still running"):
        session.comparable((1, 1))
    session.failed(None)
    with pytest.raises(Refused, match="with a folder"):
        session.continued(1)
    run.record.folder = tmp_path
    assert session.continued(1).init == f"run:{tmp_path.resolve()}"
    sweep = session.start(STUDY, TABLE, "study", STUDY)
    session.failed(None)
    assert session.viewable(2) is sweep and session.viewable(1) is None  # no final image
    with pytest.raises(Refused, match="is a sweep"):
        session.comparable((1, 2))
    with pytest.raises(Refused, match="Mark a run"):
        session.comparable(None)
    assert session.comparable((1, 1)) == (run, run)
