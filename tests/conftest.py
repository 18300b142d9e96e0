"""Shared fixtures: the study's test images and small, fast configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nst_tui.config import Config

ROOT = Path(__file__).resolve().parents[1]
# NST_TUI_IMAGES: the same photos elsewhere (a GPU box gets a copy inside the checkout).
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT.parent / "shared" / "images"))
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
}


def tiny_config(**changes: object) -> Config:
    return Config.from_dict({**TINY, **changes})


def snapshot_config(**changes: object) -> Config:
    """A tiny config whose images are the shipped ones.

    Snapshots show the image paths; the shared photos' absolute path depends on
    where the checkout lives, the builtin names do not.
    """
    builtin = {"content_image": "builtin:chelsea.png", "style_image": "builtin:swirls.png"}
    return tiny_config(**{**builtin, **changes})


@pytest.fixture(autouse=True)
def _isolated_presets(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # Presets saved by tests go to a temporary folder, never the user's.
    monkeypatch.setenv("NST_TUI_PRESETS", str(tmp_path_factory.mktemp("user-presets")))


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
