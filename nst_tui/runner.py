"""One run end to end: prepare, optimize, record. Shared by the CLI and the dashboard.

Listeners receive every engine event; the recorder is one of them, so what
lands on disk does not depend on who is watching.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nst_tui.config import Config
from nst_tui.engine.events import Event, Finished, Status
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare
from nst_tui.records import RunRecorder

Listener = Callable[[Event], None]

DEFAULT_OUTPUTS = Path("outputs")


@dataclass(frozen=True)
class RunResult:
    folder: Path
    finished: Finished
    device: str
    backbone: str


def run(
    cfg: Config,
    *,
    out_root: Path = DEFAULT_OUTPUTS,
    label: str = "run",
    listeners: Sequence[Listener] = (),
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run one experiment and write its folder. Raises NSTError before anything starts
    when an input is bad; once the loop starts, problems end up in run.json."""

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    prepared = prepare(cfg, status=lambda msg, frac=None: emit(Status(msg, frac)))
    info = {
        "device": str(prepared.device),
        "backbone": prepared.backbone.name,
        "backbone_source": prepared.backbone.source,
    }
    recorder = RunRecorder(out_root, cfg, label, info)

    def emit_all(event: Event) -> None:
        recorder(event)
        emit(event)

    emit(Status(f"running on {info['device']} with {info['backbone']}", None))
    finished = optimize(prepared.objective, prepared.canvas, cfg, emit_all, cancel)
    return RunResult(recorder.folder, finished, info["device"], info["backbone"])
