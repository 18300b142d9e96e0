"""`nst-tui run` and `nst-tui presets` end to end, as a user types them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STARRY, TUBINGEN
from PIL import Image

from nst_tui.cli import main
from nst_tui.records import FILES

TINY = [
    "--set", f"content_image={json.dumps(str(TUBINGEN))}",
    "--set", f"style_image={json.dumps(str(STARRY))}",
    "--set", "size=32", "--set", "iterations=7", "--set", "sav_freq=3",
    "--backbone", "vgg16-caffe", "--device", "cpu",
]  # fmt: skip


def test_run_writes_a_complete_record(tmp_path: Path, capsys) -> None:
    code = main(["run", "--preset", "default", *TINY, "--set", "optimizer=lbfgs", "--set",
                 "lr=1", "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    folder = Path(out[-1])
    assert folder.parent == tmp_path
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "finished"
    with Image.open(folder / "animation.gif") as gif:
        # Frames at every multiple of sav_freq plus the last iteration: ceil(7 / 3).
        assert gif.n_frames == math.ceil(7 / 3) == 3
    config = (folder / "config.toml").read_text()
    assert 'optimizer = "lbfgs"' in config and "iterations = 7" in config


def test_config_toml_reproduces_the_run(tmp_path: Path, capsys) -> None:
    assert main(["run", *TINY, "--out", str(tmp_path / "a")]) == 0
    first = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["run", "--preset", str(first / "config.toml"), "--out", str(tmp_path / "b")]) == 0
    second = Path(capsys.readouterr().out.strip().splitlines()[-1])
    a = Image.open(first / "final.png").tobytes()
    assert a == Image.open(second / "final.png").tobytes()


def test_json_summary_is_the_last_line(tmp_path: Path, capsys) -> None:
    assert main(["run", *TINY, "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished"
    assert summary["iterations_done"] == 7
    assert Path(summary["folder"]).is_dir()
    assert set(summary["final_losses"]) >= {"total", "content", "style", "tv"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "content_image=/no/such.jpg"], "content_image '/no/such.jpg': no such file"),
        (["--set", "size=3"], "size: must be between 16 and 8192"),
        (["--set", "itrations=3"], "did you mean 'iterations'"),
        (["--set", "content_layers=[7]"], "content_layers: layer indices must be 0..4"),
        (["--preset", "nosuchpreset"], "preset 'nosuchpreset': not found"),
        (["--backbone", "/tmp/none.pth"], "no such weights file"),
    ],
)
def test_errors_print_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nst_tui", "run", *TINY, *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not any(tmp_path.iterdir()), "nothing is started for bad input"


def test_bad_preset_file_is_named(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("iterations = [oops\n")
    assert main(["run", "--preset", str(bad), "--out", str(tmp_path)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_presets_lists_each_with_a_description(capsys) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "quick" in out
    for line in out.strip().splitlines():
        assert len(line.split(None, 1)) == 2, f"no description: {line!r}"


def test_init_flag_continues_an_earlier_run(tmp_path: Path, capsys) -> None:
    assert main(["run", *TINY, "--out", str(tmp_path)]) == 0
    first = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["run", *TINY, "--init", f"run:{first}", "--out", str(tmp_path)]) == 0
    second = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert f'init = "run:{first}"' in (second / "config.toml").read_text()
