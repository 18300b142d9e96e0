"""`nst-tui presets` shows descriptions as text, one terminal line each, and marks the
presets `run` would refuse."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len


def list_presets(folder: Path, columns: int) -> list[str]:
    env = {
        **os.environ,
        "NST_TUI_PRESETS": str(folder),
        "COLUMNS": str(columns),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "nst_tui", "presets"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.fixture
def odd_presets(tmp_path: Path) -> Path:
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "ansi.toml").write_text(
        'description = "\\u001b[31mred\\u001b[0m and a bell \\u0007"\n'
    )
    (folder / "long.toml").write_text(f'description = "{"word " * 20_000}"\n')  # 100 KB
    seeds = ", ".join(str(i) for i in range(2000))
    (folder / "huge.toml").write_text(f'description = "Too many"\n[sweep]\nseed = [{seeds}]\n')
    (folder / "gone.toml").write_text('content_image = "nowhere.jpg"\n')
    return folder


def line_of(lines: list[str], name: str) -> str:
    return next(line for line in lines if line.split()[0] == name)


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_every_line_fits_the_terminal(odd_presets: Path, columns: int) -> None:
    lines = list_presets(odd_presets, columns)
    assert len(lines) >= 4 + 10  # ours and the shipped ones, one line each
    assert all(cell_len(line) <= columns for line in lines), max(lines, key=cell_len)
    assert line_of(lines, "long").endswith("…")


def test_escapes_are_shown_not_sent(odd_presets: Path) -> None:
    lines = list_presets(odd_presets, 120)
    assert not any("\x1b" in line or "\x07" in line for line in lines)
    assert "\\x1b[31mred\\x1b[0m and a bell \\x07" in line_of(lines, "ansi")


def test_presets_run_refuses_are_marked_with_the_reason(odd_presets: Path) -> None:
    lines = list_presets(odd_presets, 200)
    assert "(invalid:" in line_of(lines, "huge") and "2000 cells" in line_of(lines, "huge")
    assert "nowhere.jpg': no such file" in line_of(lines, "gone")
    assert "invalid" not in line_of(lines, "default")
    assert "invalid" not in line_of(lines, "sweep-content-layers-adam")
