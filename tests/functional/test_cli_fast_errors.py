"""Input a user can fix is refused before torch loads: one line, exit 2, in well under a
second of work (torch alone takes 6-13 s here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

# Runs `main(argv)` in a fresh interpreter and says whether torch was imported.
DRIVER = (
    "import sys; from nst_tui.cli import main; rc = main(sys.argv[1:]); "
    "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(rc)"
)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_bad_value_is_refused_fast_without_torch(tmp_path: Path) -> None:
    start = time.perf_counter()
    proc = run_cli("run", "--set", "size=0", "--out", str(tmp_path))
    elapsed = time.perf_counter() - start
    assert "size: must be between 16 and 8192, got 0" in one_error_line(proc)
    assert proc.stdout.strip() == "no torch"
    assert elapsed < 5, f"{elapsed:.1f} s"  # ~0.4 s; with torch it was 6.5-13 s
    assert not any(tmp_path.iterdir())


def test_plain_command_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nst_tui", "run", "--set", "size=0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == ["error: --set: size: must be between 16 and 8192, got 0"]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported and "nst_tui.job.run" not in imported


def make_run(folder: Path, status: str) -> Path:
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "final.png")
    (folder / "config.toml").write_text("size = 32\n")
    (folder / "run.json").write_text(json.dumps({"status": status, "reason": "diverged"}))
    return folder


@pytest.mark.parametrize(
    ("make", "args", "needle"),
    [
        (None, ["--set", "content_image=nope.jpg"], "content_image 'nope.jpg': no such file"),
        (None, ["--set", "style_images=['gone.png']"], "style_images 'gone.png': no such file"),
        (None, ["--init", "missing.png"], "init 'missing.png': no such file"),
        (None, ["--set", "fps=60"], "fps: must be between 1 and 50"),
        (lambda d: (d / "w.pth").write_bytes(bytes(64)), ["--backbone", "w.pth"], "all zero"),
        (lambda d: make_run(d / "r", "failed"), ["--init", "run:r"], "that run failed (diverged)"),
        (lambda d: (d / "t.png").write_text("no"), ["--set", "content_image=t.png"], "not an"),
        (None, ["--preset", "sweep-content-layers-adam", "--set", "style_image=x.png"], "x.png"),
    ],
)
def test_inputs_are_checked_before_torch(make, args: list[str], needle: str, tmp_path: Path):
    if make:
        make(tmp_path)
    proc = run_cli("run", *args, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert needle in one_error_line(proc)
    assert proc.stdout.strip() == "no torch"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--device", "tpu"],
            "error: --device: must be one of auto, cpu, cuda or cuda:N; got 'tpu'",
        ),
        (["--backbone", "resnet"], "error: --backbone: must be one of auto"),
        (["--init", " "], "error: --init: must be one of noise, content, style"),
        (["--device", "tpu", "--set", "size=0"], "'tpu'; --set size: must be between 16"),
        (["--set", "device=tpu"], "error: --set: device: must be one of"),
    ],
)
def test_errors_name_the_option_typed(args: list[str], line: str, tmp_path: Path) -> None:
    assert line in one_error_line(run_cli("run", *args, "--out", str(tmp_path)))


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run", "--preset", ""], "error: --preset: empty; name a preset"),
        (["run", "--preset", "  "], "error: --preset: empty; name a preset"),
        (["--preset", ""], "error: --preset: empty; name a preset"),
        (["run", "--out", ""], "error: --out: empty; name a folder"),
        (["compare", "a", "b", "--out", ""], "error: --out: empty; name an image file or a folder"),
    ],
)
def test_empty_preset_and_out_are_refused(args: list[str], line: str, tmp_path: Path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert line in one_error_line(proc)
    assert list(tmp_path.iterdir()) == []  # nothing written into the working folder
