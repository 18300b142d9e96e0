"""benchmarks/quality.py runs end to end in its quick mode (32 px, here with 0.25 and 0.5 s
budgets): every recipe, one from the command line, the peer when neural-style is
installed, the JSON, the plot and the sheet.
Its numbers are not judged here (tests/unit/test_quality_judge.py checks the judge)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMAGES, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import quality
from quality import RECIPES, add_recipes, rescaled, torchvision_indices

PEER = importlib.util.find_spec("neural_style") is not None
PLOT = importlib.util.find_spec("matplotlib") is not None


def test_quick_mode_runs_every_recipe(tmp_path: Path) -> None:
    recipes = [*RECIPES, *(["peer"] if PEER else [])]
    env = {**os.environ, "NST_TUI_IMAGES": str(IMAGES)}
    done = subprocess.run(
        [sys.executable, "benchmarks/quality.py", "--quick", "--out-dir", str(tmp_path),
         "--budgets", "0.25", "0.5", "--recipes", *recipes,
         "--recipe", 'alpha-6={"alpha": 6}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "quality-cpu-quick.json").read_text())
    assert result["budgets_s"] == [0.25, 0.5] and result["sizes"] == [32]
    assert [r["recipe"] for r in result["runs"]] == [*recipes, "alpha-6"]
    assert result["recipes"]["alpha-6"] == {"preset": "default", "alpha": 6}
    for run in result["runs"]:
        assert run["status"] == "finished", run
        assert [s["budget"] for s in run["snapshots"]] == [0.25, 0.5]
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('a6={"alpah": 6}', "alpah: unknown field; did you mean 'alpha'?"),
        ('a6={"alpha": "six"}', "alpha: must be a number"),
        ("a6={alpha: 6}", "not JSON"),
        ("a6=[6]", "expected a JSON object"),
        ('a6={"preset": "nope"}', "preset 'nope': not found"),
        ("default={}", "a recipe of that name exists"),
        ('{"alpha": 6}', "expected NAME=JSON"),
    ],
)
def test_a_command_line_recipe_is_refused_before_anything_runs(
    spec: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "RECIPES", dict(RECIPES))
    with pytest.raises(ValueError, match=re.escape(message)):
        add_recipes([spec])
    assert quality.RECIPES == RECIPES


def test_a_command_line_recipe_is_fields_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quality, "RECIPES", dict(RECIPES))
    assert add_recipes(['c23={"content_layers": [2, 3], "alpha": 2}']) == ["c23"]
    cfg = quality.recipe_config("c23", ("builtin:chelsea.png", "builtin:swirls.png"), 64, "cpu")
    default = quality.recipe_config("default", ("builtin:chelsea.png", "builtin:swirls.png"),
                                    64, "cpu")  # fmt: skip
    assert cfg == default.replace(content_layers=(2, 3), alpha=2.0)
