"""The local executor: this process, one device, one batch after another."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from nst_tui.engine.events import StatusFn
from nst_tui.engine.prepare import get_backbone, load_all_inputs
from nst_tui.engine.scales import scale_configs
from nst_tui.job.events import Listener
from nst_tui.job.lifecycle import run_batch
from nst_tui.job.plan import Batch, Job


class LocalExecutor:
    """Runs batches in the calling thread; its listeners hear every event there."""

    name = "local"
    workers = 1

    def check(self, job: Job, status: StatusFn) -> None:
        load_all_inputs([scale_configs(c.config)[0] for c in job.cells])  # the likeliest to fail
        for name in dict.fromkeys(c.config.backbone for c in job.cells):
            get_backbone(name, status)

    def run(
        self, job: Job, batches: Sequence[Batch], emit: Listener, cancel: threading.Event
    ) -> None:
        for b, batch in enumerate(batches):
            run_batch(b, batch, [job.cells[i] for i in batch.cells], emit, cancel)
