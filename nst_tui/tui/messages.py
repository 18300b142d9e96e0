"""Messages from the job worker to the widgets: one started, news waiting, notes.

A job's progress waits in its relay's `NewsBox`; a `NewsReady` only says that there is
some, so a newer one replaces a queued older one and nothing is lost: the App takes
everything waiting when it gets to one. A single run is a job of one cell (cell 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from nst_tui.tui.news import LossRow as LossRow  # the widgets' rows
from nst_tui.tui.news import NewsBox


@dataclass
class JobNote(Message):
    """Something slow is happening (importing, loading weights, drawing the sheet)."""

    job_id: int
    text: str


@dataclass
class JobBegan(Message):
    """The job's folder exists and its first cell has been placed on a device."""

    job_id: int
    folder: Path
    batches: int
    device: str
    backbone: str


@dataclass
class NewsReady(Message):
    """Job `job_id` has news waiting in `box`: the App takes all of it at once."""

    job_id: int
    box: NewsBox

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older queued message whether the newer one may take its place:
        # yes when it is about the same box, since either one brings all that waits there.
        return isinstance(message, NewsReady) and message.box is self.box
