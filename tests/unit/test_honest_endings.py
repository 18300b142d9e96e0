"""Runs that claim to be fine and are not: each run's record says what really happened.

Huge weights that overflow Adam's moments (the canvas stands still) fail saying so; a
flat content keeps TV beside the other terms under normalize_losses; a run that fails
before any step keeps its start and counts no step; the GIFs hold every recorded frame;
a multi-scale run counts its iterations one way; cells a cancel kept from starting are
"not run", with no final image. Every input is made here, on the shipped images.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import run_single, snapshot_config
from PIL import Image

from nst_tui.engine.events import Finished, Progress
from nst_tui.engine.losses import tv_loss
from nst_tui.engine.objective import TV_NORM_FLOOR, Objective
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import load_inputs, prepare
from nst_tui.engine.tensors import to_uint8
from nst_tui.job.events import CellEvent
from nst_tui.job.plan import Batch, expand
from nst_tui.job.run import run_job
from nst_tui.records import interruption, write_gif


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run.json").read_text())


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def gif_frames(path: Path) -> int:
    with Image.open(path) as gif:
        return gif.n_frames


# ---- weights that overflow Adam's moments ------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"alpha": 1e30, "beta": 1e30, "gamma": 1e30},
        {"histogram": 1e28},
        {"style_stats": "w2", "beta": 1e28},
        {"gamma": 1e30, "tv": "l2"},
    ],
    ids=["all-1e30", "histogram-1e28", "w2-beta-1e28", "l2-tv-gamma-1e30"],
)
def test_weights_that_overflow_adams_moments_fail_the_run_saying_so(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    # The loss itself is finite (about 1e36): only the squared gradient overflows.
    cfg = snapshot_config(iterations=6, sav_freq=3, **changes)
    result = run_single(cfg, out_root=tmp_path)
    info = record(result.folder)
    assert info["status"] == "failed", info["reason"]
    assert info["reason"].startswith("Adam's moments overflowed float32 by iteration 1: ")
    assert "the canvas stopped moving" in info["reason"]
    assert "scale alpha, beta, gamma, histogram and style_weights down together" in info["reason"]


def test_moments_that_overflow_mid_run_are_caught_at_the_next_report(monkeypatch) -> None:
    # From the 4th step on the terms are 1e25 times larger (the loss still finite, about
    # 1e34): the overflow comes after the first iteration's check, and the report of
    # iteration 6 (sav_freq 3) carries it.
    original, calls = Objective.forward, {"n": 0}

    def forward(self: Objective, canvas: torch.Tensor, index: Any = None) -> torch.Tensor:
        calls["n"] += 1
        terms = original(self, canvas, index)
        return terms * 1e25 if calls["n"] >= 4 else terms

    monkeypatch.setattr(Objective, "forward", forward)
    prepared = prepare(snapshot_config(iterations=12, sav_freq=3))
    events: list[Any] = []
    finished = optimize(prepared.objective, prepared.canvases, [events.append])[0]
    assert finished.status == "failed"
    assert finished.reason.startswith("Adam's moments overflowed float32 by iteration 6: ")
    assert [e.iteration for e in events if isinstance(e, Progress)] == [3]


def test_ordinary_weights_pass_the_moments_check(tmp_path: Path) -> None:
    result = run_single(snapshot_config(iterations=4, sav_freq=2), out_root=tmp_path)
    assert record(result.folder)["status"] == "finished"


# ---- a flat content with normalised losses -----------------------------------------------


@pytest.mark.parametrize("tv", ["l1", "l2"])
def test_a_flat_content_with_normalised_losses_keeps_tv_beside_the_other_terms(
    tmp_path: Path, tv: str
) -> None:
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(grey)
    cfg = snapshot_config(
        content_image=str(grey), normalize_losses=True, tv=tv, iterations=40, sav_freq=20
    )
    result = run_single(cfg, out_root=tmp_path / "out")
    info = record(result.folder)
    losses = info["final_losses"]
    assert info["status"] == "finished"
    # With TV divided by 1e-12 it was 1e8 to 1e10 against content and style below 1e5,
    # and the canvas came out flat.
    assert losses["tv"] < losses["content"] + losses["style"], losses
    assert pixels(result.folder / "final.png").std() > 20


def test_a_photos_tv_is_normalised_by_its_own_tv() -> None:
    # The floor is below a photo's TV: it changes nothing for one.
    for tv in ("l1", "l2"):
        cfg = snapshot_config(normalize_losses=True, tv=tv)
        (cell,) = prepare(cfg).objective.cells
        content, _, _ = load_inputs(cfg, torch.device("cpu"))
        own = float(tv_loss(content, tv == "l2")[0])
        assert own > TV_NORM_FLOOR[tv]
        assert cell.tv_norm == pytest.approx(own)


# ---- a run that fails before any step ----------------------------------------------------


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_a_run_that_fails_before_any_step_keeps_its_start_and_counts_no_step(
    tmp_path: Path, optimizer: str
) -> None:
    # Style weights this large make the first loss infinite: Adam's step from it is NaN.
    cfg = snapshot_config(iterations=6, sav_freq=3, style_weights=[1e30] * 5, optimizer=optimizer)
    start = to_uint8(prepare(cfg).canvas)  # the seeded noise the run starts from
    result = run_single(cfg, out_root=tmp_path)
    info = record(result.folder)
    assert info["status"] == "failed"
    assert "before any step" in info["reason"]
    assert info["iterations_done"] == 0
    assert np.array_equal(pixels(result.folder / "final.png"), start)  # not all black


# ---- every frame in the GIFs -------------------------------------------------------------


def test_write_gif_keeps_frames_equal_to_the_one_before(tmp_path: Path) -> None:
    still = Image.fromarray(np.full((16, 16, 3), 90, np.uint8))
    moved = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8))
    assert write_gif(tmp_path / "a.gif", iter([still] * 4 + [moved, moved]), fps=10) == 6
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 6 and gif.info["loop"] == 0
        durations = []
        for k in range(6):
            gif.seek(k)
            durations.append(gif.info["duration"])
        assert durations == [100] * 6
        gif.seek(4)
        assert np.array_equal(np.asarray(gif.convert("RGB")), np.asarray(moved))


def test_a_run_whose_canvas_stands_still_keeps_every_frame(tmp_path: Path) -> None:
    cfg = snapshot_config(lr=1e-30, init="content", iterations=6, sav_freq=1)
    result = run_single(cfg, out_root=tmp_path)
    info = record(result.folder)
    assert info["frames"] == 6
    assert gif_frames(result.folder / "animation.gif") == 6


def test_a_sweeps_sheet_gif_keeps_every_frame(tmp_path: Path) -> None:
    base = snapshot_config(lr=1e-30, init="content", iterations=4, sav_freq=1)
    result = run_job(expand(base, {"alpha": [1.0, 2.0]}, "still"), out_root=tmp_path)
    for cell in result.cells:
        assert gif_frames(cell.folder / "animation.gif") == 4
    assert gif_frames(result.folder / "sheet.gif") == 4


# ---- a multi-scale run's counts ----------------------------------------------------------


def test_a_multi_scale_run_counts_iterations_as_iterations_done(tmp_path: Path) -> None:
    cfg = snapshot_config(scales=[24, 28, 32], iterations=2, sav_freq=1)
    result = run_single(cfg, out_root=tmp_path)
    info = record(result.folder)
    assert info["iterations"] == info["iterations_done"] == 6
    assert info["iterations_per_scale"] == 2
    sweep = run_job(expand(cfg, {"alpha": [1.0, 2.0]}, "scales"), out_root=tmp_path)
    summary = json.loads((sweep.folder / "sweep.json").read_text())
    assert [(c["iterations"], c["iterations_done"]) for c in summary["cells"]] == [(6, 6)] * 2


# ---- cells a cancel kept from starting ---------------------------------------------------


def test_cells_a_cancel_kept_from_starting_are_not_run_with_no_final_image(
    tmp_path: Path,
) -> None:
    # L-BFGS cells run one batch each: cancelled at cell 0's first report, cell 1 never starts.
    base = snapshot_config(optimizer="lbfgs", iterations=50, sav_freq=2)
    job = expand(base, {"content_layers": [[1], [3]]}, "cancelled")
    cancel = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, CellEvent) and isinstance(event.event, Progress):
            cancel.set()

    result = run_job(job, out_root=tmp_path, listeners=[on_event], cancel=cancel)
    assert result.status == "cancelled"
    ran, waited = result.cells
    assert record(ran.folder)["reason"].startswith("cancelled at iteration 2")
    assert (ran.folder / "final.png").is_file()
    info = record(waited.folder)
    assert info["status"] == "cancelled"
    assert info["reason"] == "not run: cancelled before it started"
    assert info["iterations_done"] == 0 and info["frames"] == 0
    assert not (waited.folder / "final.png").exists()
    assert not (waited.folder / "animation.gif").exists()
    summary = json.loads((result.folder / "sweep.json").read_text())
    assert summary["cells"][1]["reason"] == "not run: cancelled before it started"
    assert (result.folder / "sheet.png").is_file()  # its tile left grey


def test_a_cancel_while_loading_leaves_no_final_image(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()  # e.g. SIGTERM while the weights were loading
    result = run_single(snapshot_config(), out_root=tmp_path, cancel=cancel)
    info = record(result.folder)
    assert info["status"] == "cancelled" and info["iterations_done"] == 0
    assert info["reason"].startswith("not run: ")
    assert not (result.folder / "final.png").exists()


def test_a_sweeps_cells_say_not_run_until_their_batch_starts(tmp_path: Path) -> None:
    # What a SIGKILL leaves: the record each cell had when the process died.
    base = snapshot_config(optimizer="lbfgs", iterations=4, sav_freq=2)
    job = expand(base, {"content_layers": [[1], [3]]}, "waiting")
    seen: dict[str, Any] = {}

    def on_event(event: object) -> None:
        if isinstance(event, CellEvent) and isinstance(event.event, Progress) and not seen:
            (folder,) = tmp_path.iterdir()
            seen.update({p.name[:2]: record(p) for p in folder.iterdir() if p.is_dir()})
            seen["interruption"] = interruption(next(folder.glob("01-*")))

    result = run_job(job, out_root=tmp_path, listeners=[on_event])
    assert seen["00"]["status"] == "running"
    assert seen["01"]["status"] == "not run"
    assert seen["01"]["reason"].startswith("not run: waiting for its turn")
    assert "not run" in seen["interruption"]
    assert record(result.cells[1].folder)["status"] == "finished"  # its turn came


def test_a_ray_batch_cancelled_before_it_started_ends_its_cells_not_run() -> None:
    pytest.importorskip("ray")
    from nst_tui.job.ray_executor import _Track

    job = expand(snapshot_config(), {"alpha": [1.0, 2.0, 3.0]}, "ray")
    batches = (Batch((0, 1), True), Batch((2,), False))
    heard: list[Any] = []
    track = _Track(job, batches, heard.append)
    track.end_batch(1, "cancelled", "cancelled before it started")
    (event,) = heard
    fin = event.event
    assert isinstance(fin, Finished) and event.cell == 2
    assert fin.status == "cancelled" and fin.reason == "not run: cancelled before it started"
    assert not fin.ran and fin.iterations_done == 0
