"""A run's record survives what goes wrong twice: a second signal while the GIF is
encoded, a full disk, a SIGKILL; and a cancelled run's files agree on where it stopped."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import STARRY, TUBINGEN, run_single, tiny_config
from PIL import Image

from nst_tui.cli import main
from nst_tui.compare import compare
from nst_tui.engine.images import run_final
from nst_tui.engine.objective import Objective
from nst_tui.errors import ImageError, RunError

PAIR = [
    "--set", f"content_image={json.dumps(str(TUBINGEN))}",
    "--set", f"style_image={json.dumps(str(STARRY))}",
    "--backbone", "vgg16-caffe", "--device", "cpu",
]  # fmt: skip


def start(out: Path, *sets: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "nst_tui.cli", "run", *PAIR, *sets, "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Any, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def frames_on_disk(out: Path) -> int:
    return len(list(out.glob("*/.frames/*.png")))


def loss_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "losses.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("sav_freq", [1, 2])
def test_a_second_signal_shortens_the_wait_and_never_loses_the_record(
    tmp_path: Path, sav_freq: int
) -> None:
    out = tmp_path / "out"
    proc = start(
        out,
        *("--set", "size=48", "--set", "iterations=3000", "--set", f"sav_freq={sav_freq}"),
        *("--set", "stop_change=0"),  # runs until stopped: the default preset's rule is off
    )
    try:
        # Enough frames that encoding the GIF takes a while on a quiet machine too: the
        # second signal should come while the record is written, not after the exit (if
        # the GIF wins the race, the test checks that ending instead).
        wait_for(lambda: frames_on_disk(out) >= 100, "100 frames")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the loop has stopped; the record is being written
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    (folder,) = out.iterdir()
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "cancelled"
    rows = loss_rows(folder)
    assert int(rows[-1]["iteration"]) == record["iterations_done"]
    assert (folder / "final.png").is_file()
    if (folder / "animation.gif").is_file():  # the GIF was done before the second signal
        assert not (folder / ".frames").exists()
    else:
        assert any("a second signal" in note for note in record["notes"])
        assert len(list((folder / "frames").glob("*.png"))) == record["frames"] > 0
    assert "again: finishing the record without the GIF" in stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 200 KB tmpfs, where the machine lets a test mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_frees_the_scratch_and_records_the_run_failed(
    tiny_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = ["--set", "size=64", "--set", "iterations=50", "--set", "sav_freq=1"]
    assert main(["run", *PAIR, *sets, "--json", "--out", str(tiny_disk)]) == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = Path(summary["folder"])
    assert summary["status"] == "failed"
    assert "No space left on device" in summary["reason"]
    assert not (folder / ".frames").exists(), "the scratch frames are freed"
    assert not list(folder.glob(".*.tmp"))


def test_a_killed_run_is_visibly_interrupted_and_keeps_its_losses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(out, "--set", "size=32", "--set", "iterations=3000", "--set", "sav_freq=2")
    try:
        wait_for(lambda: any(len(loss_rows(f)) >= 3 for f in out.glob("*") if
                             (f / "losses.csv").exists()), "3 loss rows")  # fmt: skip
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    (folder,) = out.iterdir()
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "running"
    assert record["backbone"] == "vgg16-caffe"  # placed before it was killed
    rows = loss_rows(folder)
    assert len(rows) >= 3 and [int(r["iteration"]) for r in rows[:3]] == [2, 4, 6]
    with pytest.raises(RunError, match=r"is an interrupted run .*killed before it finished"):
        compare(folder, folder, tmp_path / "c.png")
    with pytest.raises(ImageError, match="interrupted"):
        run_final(str(folder))


def test_a_cancelled_runs_files_agree_on_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancel = threading.Event()
    original = Objective.forward
    calls = {"n": 0}

    def forward(self: Objective, canvas: torch.Tensor, index: Any = None) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 23:  # between two logged iterations (every 5)
            cancel.set()
        return original(self, canvas, index)

    monkeypatch.setattr(Objective, "forward", forward)
    cfg = tiny_config(iterations=100, sav_freq=5)
    result = run_single(cfg, out_root=tmp_path, cancel=cancel)
    folder = result.folder
    record = json.loads((folder / "run.json").read_text())
    rows = loss_rows(folder)
    assert record["status"] == "cancelled" and record["iterations_done"] == 23
    assert int(rows[-1]["iteration"]) == 23
    assert float(rows[-1]["total"]) == pytest.approx(record["final_losses"]["total"], rel=1e-5)
    with Image.open(folder / "animation.gif") as gif:
        assert gif.n_frames == record["frames"] == 5  # 5, 10, 15, 20 and 23
        gif.seek(gif.n_frames - 2)
        before = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    # The GIF's last frame is final.png, through the same palette quantisation.
    with Image.open(folder / "final.png") as final:
        quantised = final.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    assert np.array_equal(last, np.asarray(quantised.convert("RGB")))
    assert not np.array_equal(last, before)
