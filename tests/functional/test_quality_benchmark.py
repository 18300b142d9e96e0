"""benchmarks/quality.py runs end to end in its quick mode (32 px, 0.5 and 1 s budgets):
every recipe, the peer when neural-style is installed, the JSON, the plot and the sheet.
Its numbers are not judged here (tests/unit/test_quality_judge.py checks the judge)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMAGES, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from quality import RECIPES, rescaled, torchvision_indices

PEER = importlib.util.find_spec("neural_style") is not None
PLOT = importlib.util.find_spec("matplotlib") is not None


def test_quick_mode_runs_every_recipe(tmp_path: Path) -> None:
    recipes = [*RECIPES, *(["peer"] if PEER else [])]
    env = {**os.environ, "NST_TUI_IMAGES": str(IMAGES)}
    done = subprocess.run(
        [sys.executable, "benchmarks/quality.py", "--quick", "--out-dir", str(tmp_path),
         "--recipes", *recipes],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "quality-cpu-quick.json").read_text())
    assert result["budgets_s"] == [0.5, 1.0] and result["sizes"] == [32]
    assert [r["recipe"] for r in result["runs"]] == recipes
    for run in result["runs"]:
        assert run["status"] == "finished", run
        assert [s["budget"] for s in run["snapshots"]] == [0.5, 1.0]
        for snap in run["snapshots"]:
            assert snap["iterations"] >= 1
            for key in ("content", "style", "artifacts", "content_issue", "style_issue"):
                assert snap[key] >= 0
        first, second = run["snapshots"]
        assert second["iterations"] >= first["iterations"]
    assert (tmp_path / "quality-cpu-quick-tubingen+starry_night-32px.jpg").stat().st_size > 0
    if PLOT:
        assert (tmp_path / "quality-cpu-quick.png").stat().st_size > 0
    assert "study" in done.stdout and "artif." in done.stdout


@pytest.mark.skipif(PEER, reason="neural-style is installed: the run above covers the peer")
def test_without_neural_style_the_peer_is_refused_by_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/quality.py", "--quick", "--recipes", "peer",
         "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "pip install" in done.stderr


def test_multiscale_scales_follow_the_size() -> None:
    assert rescaled([64, 128, 256], 256, 256, 22) == [64, 128, 256]
    assert rescaled([64, 128, 256], 256, 128, 22) == [32, 64, 128]
    assert rescaled([64, 128, 256], 256, 32, 22) == [22, 32]  # never below the images' least


def test_peer_weights_sit_where_torchvision_puts_vgg16s_convs() -> None:
    assert torchvision_indices() == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
