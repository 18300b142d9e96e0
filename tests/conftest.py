"""Shared fixtures: the study's test images and small, fast configs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nst_tui.config import Config

# Under pytest-xdist (the README's `-n auto`), each worker computes on one thread, and so do
# the processes it starts: two workers of two threads each on CI's two cores slowed both.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
# The study's pairs, downsized, ship in tests/data (see its SOURCES.md);
# NST_TUI_IMAGES points at other copies of the same file names.
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))
TUBINGEN = IMAGES / "tubingen.jpg"
STARRY = IMAGES / "starry_night.jpg"


# A real pair at 32 px on the offline backbone: seconds, not minutes.
TINY = {
    "content_image": str(TUBINGEN),
    "style_image": str(STARRY),
    "size": 32,
    "iterations": 10,
    "sav_freq": 5,
    "backbone": "vgg16-caffe",
    "device": "cpu",
    # Pinned: "auto" would pick bf16 on a CPU with AMX and fp32 elsewhere, and the tests'
    # numbers must not depend on the machine. The bf16 and auto paths have their own tests.
    "precision": "fp32",
}


def assert_alike_but_for_batch_rounding(a, b) -> None:
    """Two pictures of one config, one computed in a batch of cells and one alone.

    Batched convolutions sum in another order (oneDNN and cuDNN block by batch size), so
    gradients differ in their last bits. Adam divides each gradient by its running RMS:
    where a pixel's gradient is near zero, a rounding difference can flip the sign of a
    step of up to lr (15 levels of 255 at lr 0.06), and a few values may then differ by
    several levels, more or less by CPU. The picture as a whole may not: at most 1% of
    the values differ by more than one level, and the mean difference stays under 0.1.
    """
    import numpy as np

    diff = np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int))
    assert diff.shape == np.asarray(a).shape
    assert (diff > 1).mean() <= 0.01, f"{(diff > 1).mean():.2%} of values differ by more than 1"
    assert diff.mean() <= 0.1, f"mean difference {diff.mean():.3f} levels"


def tiny_config(**changes: object) -> Config:
    return Config.from_dict({**TINY, **changes})


def snapshot_config(**changes: object) -> Config:
    """A tiny config whose images are the shipped ones.

    Snapshots show the image paths; the shared photos' absolute path depends on
    where the checkout lives, the builtin names do not.
    """
    builtin = {"content_image": "builtin:chelsea.png", "style_image": "builtin:swirls.png"}
    return tiny_config(**{**builtin, **changes})


@pytest.fixture
def fixed_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The form's memory line sees the same CPU everywhere (16 GiB free, 1 GiB held), so a
    snapshot does not change with the machine's free memory."""
    from nst_tui.memory import Device
    from nst_tui.tui.widgets import params_form

    device = Device("cpu", free=16 << 30, used=1 << 30, torch_loaded=False)
    monkeypatch.setattr(params_form, "device_now", lambda spec, *a, **k: device)


@pytest.fixture(autouse=True)
def _isolated_presets(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # Presets saved by tests go to a temporary folder, never the user's.
    monkeypatch.setenv("NST_TUI_PRESETS", str(tmp_path_factory.mktemp("user-presets")))


@pytest.fixture(autouse=True)
def _steps_never_slow(monkeypatch: pytest.MonkeyPatch) -> None:
    # A slow step gets a Progress of its own (engine/optimize.py, SLOW_STEP_S): on a loaded
    # machine a first step's warm-up can take that long, and a test's events would depend
    # on the machine. Tests of that rule set the threshold themselves.
    from nst_tui.engine import optimize

    monkeypatch.setattr(optimize, "SLOW_STEP_S", float("inf"))


@pytest.fixture(scope="session")
def caffe():
    from nst_tui.engine.prepare import get_backbone

    return get_backbone("vgg16-caffe")


def run_single(cfg: Config, *, out_root: Path, label: str = "run", listeners=(), cancel=None):
    """One config through the job path (a job of one cell), as `nst-tui run` does; the
    listeners hear the cell's engine events, unwrapped."""
    from nst_tui.job.events import CellEvent
    from nst_tui.job.plan import single
    from nst_tui.job.run import run_job

    def cell_events(event: object) -> None:
        if isinstance(event, CellEvent):
            for listener in listeners:
                listener(event.event)

    return run_job(
        single(cfg, label), out_root=out_root, label=label, listeners=[cell_events], cancel=cancel
    )


def eager_dashboard(posted: list):
    """A relay's `post` for a dashboard that takes a job's news the moment it is told:
    `posted` gets that news (a JobNews) in place of each NewsReady that found some, and
    every other message as it is."""
    from nst_tui.tui.messages import NewsReady

    def post(message: object) -> None:
        if not isinstance(message, NewsReady):
            posted.append(message)
        elif (news := message.box.take()) is not None:
            posted.append(news)

    return post


def lasting_toasts(app: Any) -> Any:
    """The app, its toasts kept until the snapshot is taken: one lasts 2-5 s, and on a
    loaded machine (CI failed so) it was gone before the picture was."""
    notify = app.notify

    def lasting_notify(*args: Any, **kwargs: Any) -> None:
        notify(*args, **{**kwargs, "timeout": 600})

    app.notify = lasting_notify
    return app
