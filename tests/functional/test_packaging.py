"""A non-editable install carries the presets and images and finds them from any folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import ROOT


def test_wheel_ships_presets_and_assets_and_finds_them_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("nst_tui-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "nst_tui/presets/default.toml" in names
    assert "nst_tui/presets/quick.toml" in names
    assert "nst_tui/assets/chelsea.png" in names and "nst_tui/assets/swirls.png" in names
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    code = (
        "from nst_tui import presets; from nst_tui.engine.images import load_image;"
        "p = presets.load('quick'); print(p.path);"
        "print(load_image(p.config.content_image).size)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(site / "nst_tui" / "presets"))
