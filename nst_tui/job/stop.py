"""How a user stops a job, the same from the CLI (Ctrl-C, SIGTERM, SIGHUP) and the
dashboard (escape, SIGTERM, SIGHUP): the first request cancels (the record is written,
marked cancelled), the second hurries (the record is finished without its GIF; run.json
says so and the frames stay), the third means now."""

from __future__ import annotations

import threading

CANCEL, HURRY, NOW = "cancel", "hurry", "now"

# What each step tells the user (after the request's name: "SIGTERM: ...", "escape: ...").
SAYS = {
    CANCEL: "stopping; saving the run so far (again: skip the GIF)",
    HURRY: "again: finishing the record without the GIF (once more: stop now)",
    NOW: "stopping now, where it is",
}


def escalate(cancel: threading.Event, hurry: threading.Event) -> str:
    """Take the next step on a stop request; returns which (CANCEL, HURRY or NOW)."""
    if hurry.is_set():
        return NOW
    if cancel.is_set():
        hurry.set()
        return HURRY
    cancel.set()
    return CANCEL
