"""One way to stop a job, for the CLI's signals and the dashboard's escape and signals."""

from __future__ import annotations

import threading

from nst_tui.job.stop import CANCEL, HURRY, NOW, escalate


def test_cancel_then_hurry_then_now() -> None:
    cancel, hurry = threading.Event(), threading.Event()
    assert escalate(cancel, hurry) == CANCEL and cancel.is_set() and not hurry.is_set()
    assert escalate(cancel, hurry) == HURRY and hurry.is_set()
    assert escalate(cancel, hurry) == NOW
    assert escalate(cancel, hurry) == NOW


def test_a_job_cancelled_elsewhere_is_hurried_by_the_first_request() -> None:
    cancel, hurry = threading.Event(), threading.Event()
    cancel.set()  # e.g. quitting from the dashboard cancelled it
    assert escalate(cancel, hurry) == HURRY
