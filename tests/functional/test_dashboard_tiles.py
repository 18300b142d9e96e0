"""A run in tiles, in the dashboard: the status line says how far a slow pass is, and
escape stops the run at the next tile, not at the end of a step that can take minutes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from test_dashboard import SIZE, make_app, wait_for_run

from nst_tui.engine import tiles
from nst_tui.engine.tiles import TiledTerms


async def test_a_slow_pass_in_tiles_shows_its_tiles_and_escape_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each window takes 50 ms, and every pass counts as slow: a step of a few seconds.
    monkeypatch.setattr(tiles, "SLOW_S", 0.0)
    monkeypatch.setattr(tiles, "EVERY_S", 0.0)
    app = make_app(
        tmp_path,
        tiny_config(size=64, tile=16, style_layers=[0, 1], content_layers=[1], iterations=50),
    )
    after_cancel = []  # windows that started computing once the cancel was set
    features = TiledTerms.features

    def slow(self: TiledTerms, window: torch.Tensor) -> dict[int, torch.Tensor]:
        if app.active is not None and app.active.cancel.is_set():
            after_cancel.append(window.shape)
        time.sleep(0.05)
        return features(self, window)

    monkeypatch.setattr(TiledTerms, "features", slow)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        waited, seen = 0.0, ""
        # A step's second pass, once the first step has ended (the state is running then).
        while not (app.status.state.state == "running" and "pass 2 of 2, tile 3 of" in seen):
            assert waited < 60, f"no tile shown; the status line: {seen!r}"
            await pilot.pause(0.02)
            waited += 0.02
            seen = str(app.status.render())
        assert "running  tiles: pass 2 of 2, tile 3 of " in seen
        await pilot.press("escape")
        await wait_for_run(pilot, app, timeout=30)
        assert len(after_cancel) <= 1  # at most the window the check had just let through
        summary = json.loads((app.session.jobs[1].record.folder / "run.json").read_text())
        assert summary["status"] == "cancelled"
        assert summary["reason"] == f"cancelled at iteration {summary['iterations_done']}"
        assert summary["iterations_done"] < 50
