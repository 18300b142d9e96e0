"""The memory plan on the command line: `run --plan` prints it and exits without running;
a budget nothing fits, or one that is not a size, is refused before torch loads: one line,
exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import STARRY, TUBINGEN
from test_cli_fast_errors import one_error_line, run_cli

IMAGES = ["--set", f"content_image={json.dumps(str(TUBINGEN))}"]
IMAGES += ["--set", f"style_image={json.dumps(str(STARRY))}"]
CPU = ["--device", "cpu", "--backbone", "vgg16-caffe", *IMAGES]


def test_plan_prints_the_plan_and_exits_without_running(tmp_path: Path) -> None:
    proc = run_cli("run", "--plan", *CPU, "--set", "size=512", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "no torch"  # the driver's own line: the plan needed none
    assert lines[0].startswith("512 px (512x384): ≈") and "GFLOP/iteration" in lines[0]
    assert "the activations" in lines[1] and "peaks in" in lines[1]
    assert lines[2].startswith("memory: ≈") and lines[2].endswith("on cpu · fits")
    assert not (tmp_path / "o").exists()  # nothing ran, no folder


def test_plan_shows_the_tiles_a_budget_needs(tmp_path: Path) -> None:
    args = ["--set", "size=3072", "--set", "max_memory=3GiB", "--set", "precision=fp32"]
    proc = run_cli("run", "--plan", *CPU, *args)
    assert proc.returncode == 0, proc.stderr
    memory = proc.stdout.strip().splitlines()[-2]
    assert memory.startswith("memory: ≈") and "of 3.0 GiB budget on cpu · " in memory
    assert " tiles of " in memory


def test_plan_as_json(tmp_path: Path) -> None:
    proc = run_cli("run", "--plan", "--json", *CPU, "--set", "size=256")
    assert proc.returncode == 0, proc.stderr
    (plan,) = json.loads(proc.stdout.strip().splitlines()[0])["plans"]
    assert plan["fits"] and plan["plan"] == "fits" and plan["device"] == "cpu"
    assert plan["predicted_peak_bytes"] > 500 << 20
    assert plan["budget"] == "auto" and plan["budget_bytes"] > 0


def test_plan_of_a_run_that_cannot_fit_prints_it_then_refuses(tmp_path: Path) -> None:
    proc = run_cli("run", "--plan", *CPU, "--set", "size=2048", "--set", "max_memory=300MiB")
    assert "does not fit" in proc.stdout
    line = one_error_line(proc)
    assert line.startswith("error: max_memory 300MiB (300 MiB budget on cpu): size 2048 needs ")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--set", "max_memory=6XB"],
            "error: --set: max_memory: '6XB' is not a size: use B, KiB, MiB, GiB, TiB (or "
            'kB, MB, GB, TB: powers of 1000), e.g. "6GiB" or "512MiB"; or auto (a safe share '
            "of what the device has free)",
        ),
        (
            ["--set", "max_memory='6 XB'"],
            "error: --set: max_memory: '6 XB' is not a size: use B, KiB, MiB, GiB, TiB",
        ),
        (["--set", "max_memory=6"], "error: --set: max_memory: must be a string, got 6"),
        (["--set", "max_memory='6'"], "error: --set: max_memory: '6' has no unit: use B, KiB"),
        (
            ["--set", "max_memory=100MiB"],
            "error: max_memory 100MiB (100 MiB budget on cpu): size 128 needs ",
        ),
        (
            ["--set", "size=8192", "--set", "max_memory=1GiB"],
            "error: max_memory 1GiB (1.0 GiB budget on cpu): size 8192 needs ",
        ),
        (
            ["--set", "size=8192", "--set", "max_memory=2GiB", "--set", "optimizer=lbfgs"],
            "the optimizer's state: ",
        ),
    ],
)
def test_a_budget_nothing_fits_is_refused_before_torch(args, line: str, tmp_path: Path) -> None:
    proc = run_cli("run", *CPU, *args, "--out", str(tmp_path / "o"))
    assert line in one_error_line(proc)
    assert proc.stdout.strip() == "no torch"
    assert not (tmp_path / "o").exists()


def test_a_budget_below_the_smallest_tile_says_what_to_change(tmp_path: Path) -> None:
    proc = run_cli("run", *CPU, "--set", "size=4096", "--set", "max_memory=700MiB")
    line = one_error_line(proc)
    assert "even in tiles of 16 px" in line
    assert line.endswith("; lower size or raise max_memory")


def test_a_forced_tile_too_large_for_the_budget_says_to_lower_the_tile() -> None:
    # Before: "needs 1.7 GiB even in tiles of 16 px, a budget of 1.8 GiB or more" with a
    # 3 GiB budget: the smallest tile's figures, when the forced tile was what did not fit.
    proc = run_cli(
        "run", *CPU, "--set", "size=2048", "--set", "tile=768", "--set", "max_memory=3GiB"
    )
    line = one_error_line(proc)
    assert "needs" in line and "in tiles of 768 px (tile = 768" in line
    assert "even in tiles of 16 px" not in line
    assert line.endswith("; lower tile, or set tile = 0 and the plan chooses")
    # The same budget without the forced tile: the plan picks tiles that fit.
    ok = run_cli("run", *CPU, "--set", "size=2048", "--set", "max_memory=3GiB", "--plan")
    assert ok.returncode == 0, ok.stderr
    assert "tiles of" in ok.stdout
