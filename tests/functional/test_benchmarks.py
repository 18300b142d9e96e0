"""The benchmark scripts run end to end (tiny sizes, few iterations) and write what the
tables of benchmarks/README.md read. Their numbers are not judged here, only that they are measured:
the same scripts run on a GPU box, where a crash would cost its whole device session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IMAGES, ROOT, tiny_config

from nst_tui.engine.flops import objective_flops
from nst_tui.engine.prepare import prepare


def run_script(*args: str, timeout: float = 300) -> str:
    env = {**os.environ, "NST_TUI_IMAGES": str(IMAGES)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_speed_measures_every_section(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    printed = run_script(
        "benchmarks/speed.py", "--device", "cpu", "--sizes", "64", "--iterations", "3",
        "--repeats", "1", "--memory-sizes", "64", "--sweep-size", "32", "--streaming-size", "32",
        "--streaming-iterations", "6", "--json", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    (row,) = result["results"]
    assert row["size"] == 64
    assert row["engine_it_s"] > 0 and row["baseline_it_s"] > 0
    assert row["ratio"] == pytest.approx(row["engine_it_s"] / row["baseline_it_s"])
    # The work per iteration is the engine's own count for that config (64x48 canvas).
    prepared = prepare(tiny_config(size=64, content_layers=(3,), style_layers=(0, 1, 2, 3, 4)))
    gflop = objective_flops(prepared.objective, prepared.canvas).total / 1e9
    assert row["gflop_per_it"] == pytest.approx(gflop, rel=1e-6)
    assert row["tflop_s"] == pytest.approx(gflop * row["engine_it_s"] / 1e3)
    assert row["fraction_of_peak"] is None  # no datasheet peak for a CPU
    sweep = result["sweep"]
    assert sweep["batched_cell_it_s"] > 0 and sweep["sequential_cell_it_s"] > 0
    (memory,) = result["memory"]
    assert memory["size"] == 64 and memory["peak_rss_mib"] >= memory["rss_before_mib"] > 0
    streaming = result["streaming"]
    for mode in ("headless", "thread", "relay", "dashboard"):
        assert streaming[f"{mode}_it_s"] > 0
    assert "64 px  engine" in printed and "streaming at 32 px" in printed


def test_bf16_quality_scores_both_precisions(tmp_path: Path) -> None:
    run_script(
        "benchmarks/bf16_quality.py", "--device", "cpu", "--size", "64", "--iterations", "5",
        "--out", str(tmp_path),
    )  # fmt: skip
    report = json.loads((tmp_path / "bf16-vs-fp32-64px-cpu.json").read_text())
    assert report["total_ratio_bf16_over_fp32"] > 0
    assert 0 <= report["mean_abs_pixel_difference_0_255"] <= 255
    assert (tmp_path / "bf16-vs-fp32-64px-cpu.png").stat().st_size > 0


def test_tiles_speed_sets_tiled_beside_untiled(tmp_path: Path) -> None:
    out = tmp_path / "tiles.json"
    printed = run_script(
        "benchmarks/tiles_speed.py", "--device", "cpu", "--sizes", "64", "--tiles", "32",
        "--iterations", "1", "--repeats", "1", "--json", str(out),
    )  # fmt: skip
    untiled, tiled = json.loads(out.read_text())["results"]
    assert (untiled["tile"], tiled["tile"]) == (0, 32)
    assert untiled["it_s"] > 0 and tiled["it_s"] > 0
    assert tiled["tiles"] == "2x2" and tiled["grad_rel_error"] < 1e-4
    assert "64 px  tile   32" in printed


def test_memory_benchmark_measures_every_section(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    # Twelve fresh processes of the command line (torch loads in each): give them time.
    printed = run_script("benchmarks/memory.py", "--quick", "--json", str(out), timeout=900)
    result = json.loads(out.read_text())
    for row in result["table"]:
        assert row["run"]["rc"] == 0 and row["run"]["status"] == "finished"
        assert row["plan"]["predicted_peak_bytes"] > 0 and row["run"]["peak_rss_bytes"] > 0
        assert row["run"]["memory"]["measured_peak_bytes"] > 0  # run.json's own record
        assert "error" in row and "run_error" in row
    assert result["table"][1]["plan"]["tiles"] == "2x2"
    (recompute,) = result["recompute"]
    assert recompute["plain"]["plan"]["plan"] == "fits"
    assert recompute["recomputing"]["plan"]["plan"] == "fits, recomputing blocks"
    assert recompute["recomputing"]["run"]["status"] == "finished"
    assert recompute["speed_ratio"] > 0
    bounded = result["bounded"]
    assert [r["settings"]["size"] for r in bounded["rows"]] == [64]
    for row in bounded["rows"]:
        assert row["untiled_predicted_bytes"] > 0 and row["untiled_measured_bytes"] > 0
    # 64 px fits 3 GiB as it is, roomy as without a budget: its row is the untiled run.
    assert bounded["rows"][0]["untiled_same_run"]
    assert (
        bounded["rows"][0]["untiled_measured_bytes"] == result["table"][0]["run"]["peak_rss_bytes"]
    )
    (speed,) = result["speed"]
    assert speed["untiled_it_s"] > 0 and speed["tiled_it_s"] > 0 and speed["tile"] == 32
    assert result["big"]["run"]["status"] == "finished"
    assert result["big"]["seconds_per_iteration"] > 0
    (allocator,) = result["allocator"]
    assert allocator["best_it_s"]["tight"] > 0 and allocator["best_it_s"]["roomy"] > 0
    assert "largest |predicted / measured - 1|" in printed
