"""A pass in tiles answers between two tiles (engine/tiles.py TileWatch). At 4096 px one
step in tiles takes minutes: a cancel (escape, ctrl+c) stops it at the next tile, not at
the step's end, and a slow pass says how far it is. The step cut short applies nothing;
the run is recorded cancelled at the last step it finished. The targets' pass in tiles
(in prepare) answers alike."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from conftest import run_single, snapshot_config, tiny_config
from PIL import Image

from nst_tui.engine import tiles
from nst_tui.engine.events import Status
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare
from nst_tui.engine.tiles import TiledTerms, TilePlan

# 64x48 px in tiles of 16, to conv2_1: a dozen windows per pass, a fraction of a second.
SMALL_TILED = {"size": 64, "tile": 16, "style_layers": [0, 1], "content_layers": [1]}


def tiled_run(cfg, monkeypatch: pytest.MonkeyPatch, cancel_at_window: int | None):
    """Run `cfg` in tiles, setting the cancel while window number `cancel_at_window`
    (counted over both passes of every step) computes its features; returns the run's
    Finished, how many windows computed, and the prepared run."""
    prepared = prepare(cfg)
    cancel = threading.Event()
    windows = 0
    features = TiledTerms.features

    def counted(self: TiledTerms, window: torch.Tensor) -> dict[int, torch.Tensor]:
        nonlocal windows
        windows += 1
        if windows == cancel_at_window:
            cancel.set()
        return features(self, window)

    monkeypatch.setattr(TiledTerms, "features", counted)
    (finished,) = optimize(prepared.objective, prepared.canvases, [lambda e: None], cancel)
    return finished, windows, prepared


@pytest.mark.parametrize("second_pass", [False, True], ids=["first pass", "second pass"])
def test_an_adam_step_in_tiles_stops_at_the_next_tile(
    monkeypatch: pytest.MonkeyPatch, second_pass: bool
) -> None:
    cfg = tiny_config(**SMALL_TILED, iterations=10, sav_freq=1)
    prepared = prepare(cfg)
    n = prepared.objective.plan(prepared.canvases[0]).n_tiles
    assert n >= 6
    # The third step's second window of the pass: two whole steps ran 2 * n windows each.
    at = 2 * 2 * n + (n if second_pass else 0) + 2
    finished, windows, cut = tiled_run(cfg, monkeypatch, at)
    assert windows == at  # the window running when the cancel came was the last
    assert finished.status == "cancelled"
    assert (finished.iterations_done, finished.reason) == (2, "cancelled at iteration 2")
    # Nothing of the step cut short was applied: the canvas of a run of two steps.
    two, _, whole = tiled_run(cfg.replace(iterations=2), monkeypatch, None)
    assert two.status == "finished" and two.iterations_done == 2
    assert torch.equal(cut.canvases[0], whole.canvases[0])
    assert (finished.image == two.image).all()


def test_an_lbfgs_evaluation_in_tiles_stops_at_the_next_tile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = tiny_config(**SMALL_TILED, iterations=10, optimizer="lbfgs", lr=1.0)
    prepared = prepare(cfg)
    n = prepared.objective.plan(prepared.canvases[0]).n_tiles
    at = 3 * 2 * n + n + 1  # the fourth evaluation's backward, its first window
    finished, windows, _ = tiled_run(cfg, monkeypatch, at)
    assert windows == at
    assert finished.status == "cancelled"
    assert (finished.iterations_done, finished.reason) == (3, "cancelled at iteration 3")


def test_a_run_not_cancelled_computes_every_window(monkeypatch: pytest.MonkeyPatch) -> None:
    # The counting above is of real windows: a run of 3 steps computes 3 * 2 * n.
    cfg = tiny_config(**SMALL_TILED, iterations=3)
    prepared = prepare(cfg)
    n = prepared.objective.plan(prepared.canvases[0]).n_tiles
    finished, windows, _ = tiled_run(cfg, monkeypatch, None)
    assert finished.status == "finished" and windows == 3 * 2 * n


def cancel_at_first_tile(monkeypatch: pytest.MonkeyPatch, cancel: threading.Event) -> list[int]:
    """Set `cancel` as the first tile of any pass in tiles comes (the targets' pass when
    prepare runs one); returns the count of tiles handed out, kept up to date."""
    tiles, handed = TilePlan.tiles, [0]

    def first_sets(self: TilePlan):
        for tile in tiles(self):
            cancel.set()
            handed[0] += 1
            yield tile

    monkeypatch.setattr(TilePlan, "tiles", first_sets)
    return handed


def test_a_cancel_in_the_targets_pass_ends_the_run_before_its_first_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cancel = threading.Event()
    handed = cancel_at_first_tile(monkeypatch, cancel)
    cfg = snapshot_config(**SMALL_TILED, iterations=10)
    result = run_single(cfg, out_root=tmp_path, cancel=cancel)
    assert handed == [1]  # the pass stopped before its first window computed
    info = json.loads((result.folder / "run.json").read_text())
    assert (info["status"], info["iterations_done"]) == ("cancelled", 0)
    assert info["reason"] == "not run: cancelled before its first step"
    assert not (result.folder / "final.png").exists()


def test_a_cancel_before_a_tiled_scale_keeps_the_coarser_scales_picture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 32 px fits one tile of 32 (untiled); 64 px goes in tiles, its targets' pass first.
    cancel = threading.Event()
    handed = cancel_at_first_tile(monkeypatch, cancel)
    cfg = snapshot_config(**{**SMALL_TILED, "tile": 32}, scales=[32, 64], iterations=8, sav_freq=4)
    result = run_single(cfg, out_root=tmp_path, cancel=cancel)
    info = json.loads((result.folder / "run.json").read_text())
    assert (info["status"], info["iterations_done"]) == ("cancelled", 8)
    assert info["reason"] == "cancelled at iteration 8 (before scale 64 px)"
    assert handed == [1]
    with Image.open(result.folder / "final.png") as final:
        assert max(final.size) == 32  # the picture it stood at: the 32 px scale's


def test_a_slow_pass_in_tiles_says_how_far_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tiles, "SLOW_S", 0.0)  # every pass counts as slow, every tile told
    monkeypatch.setattr(tiles, "EVERY_S", 0.0)
    seen: list[Status] = []
    cfg = snapshot_config(**SMALL_TILED, iterations=2)
    listen = [lambda e: seen.append(e) if isinstance(e, Status) and e.fraction is not None else 0]
    run_single(cfg, out_root=tmp_path, listeners=listen)
    first = [s for s in seen if s.message.startswith("tiles: pass 1 of 2, ")]
    second = [s for s in seen if s.message.startswith("tiles: pass 2 of 2, ")]
    n = int(first[0].message.rsplit(" of ", 1)[1])
    assert n >= 6
    assert len(first) == len(second) == 2 * (n + 1)  # every tile, then "done", each step
    assert first[:2] == [
        Status(f"tiles: pass 1 of 2, tile 1 of {n}", 0.0),
        Status(f"tiles: pass 1 of 2, tile 2 of {n}", 1 / n),
    ]
    assert first[n] == Status(f"tiles: pass 1 of 2, {n} tiles done", 1.0)
    assert [s.fraction for s in second[: n + 1]] == [k / n for k in range(n)] + [1.0]
    # Before the steps, the targets' pass in tiles: the content's, then the style's.
    targets = seen[: seen.index(first[0])]
    assert targets[0] == Status(f"targets: content, tile 1 of {n}", 0.0)
    assert targets[n] == Status(f"targets: content, {n} tiles done", 1.0)
    assert targets[-1].message.startswith("targets: style, ") and targets[-1].fraction == 1.0


def test_a_fast_pass_in_tiles_says_nothing(tmp_path: Path) -> None:
    seen: list[Status] = []
    cfg = snapshot_config(**SMALL_TILED, iterations=2)
    listen = [lambda e: seen.append(e) if isinstance(e, Status) and e.fraction is not None else 0]
    run_single(cfg, out_root=tmp_path, listeners=listen)
    assert seen == []  # its passes take milliseconds: no bar flickers past
