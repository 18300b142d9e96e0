"""Whatever ends a sweep, every cell has its run.json and sweep.json its final status.

A crash, a host running out of memory, Ctrl-C and SIGTERM inside a cell; and a cell's
run.json holds every field a single run's does. The sweep: Adam cells at content
layers 1 and 3 (one batch of two), then the same two with L-BFGS (one batch each).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_single, tiny_config

from nst_tui.engine.events import Progress
from nst_tui.engine.objective import Objective
from nst_tui.job.events import CellEvent
from nst_tui.job.plan import expand
from nst_tui.job.run import run_job

TABLE = {"optimizer": ["adam", "lbfgs"], "content_layers": [[1], [3]]}


def sweep(**changes: Any):
    return expand(tiny_config(iterations=6, sav_freq=2, lr=0.5, **changes), TABLE, "faults")


def records(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """sweep.json and every cell's run.json, in cell order."""
    summary = json.loads((folder / "sweep.json").read_text())
    cells = [json.loads((folder / c["folder"] / "run.json").read_text()) for c in summary["cells"]]
    return summary, cells


def raise_in_cell(cell: int, iteration: int, error: BaseException) -> Any:
    def listener(event: object) -> None:
        if (
            isinstance(event, CellEvent)
            and event.cell == cell
            and isinstance(event.event, Progress)
            and event.event.iteration == iteration
        ):
            raise error

    return listener


def test_a_crash_in_a_cell_records_every_cell_then_is_raised(tmp_path: Path) -> None:
    job = sweep()
    with pytest.raises(ValueError, match="a cell broke"):
        run_job(job, out_root=tmp_path, listeners=[raise_in_cell(2, 4, ValueError("a cell broke"))])
    (folder,) = tmp_path.iterdir()
    summary, cells = records(folder)
    assert summary["status"] == "failed"
    assert [c["status"] for c in cells] == ["finished", "finished", "failed", "failed"]
    assert cells[2]["reason"] == "ValueError: a cell broke"
    assert cells[2]["iterations_done"] == 4
    assert cells[3]["reason"] == "not run: the job stopped (ValueError)"
    assert [c["status"] for c in summary["cells"]] == [c["status"] for c in cells]
    assert not list(folder.rglob(".frames")), "no scratch frames are left"


def test_host_memory_running_out_in_a_cell_fails_its_batch_and_the_rest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Objective.forward
    calls = {"n": 0}

    def forward(self: Objective, canvas: torch.Tensor, index: Any = None) -> torch.Tensor:
        calls["n"] += 1
        if canvas.shape[0] == 2 and calls["n"] >= 3:  # the batched Adam cells, mid-run
            raise MemoryError
        return original(self, canvas, index)

    monkeypatch.setattr(Objective, "forward", forward)
    result = run_job(sweep(), out_root=tmp_path)
    summary, cells = records(result.folder)
    assert result.status == summary["status"] == "failed"
    assert [c["status"] for c in cells] == ["failed", "failed", "finished", "finished"]
    for cell in cells[:2]:
        # What the plan expected (this machine's free memory: a pattern), then what to try.
        assert re.fullmatch(
            r"out of memory while running at size 32 on cpu \(planned ≈[\d.]+ \w+ of .* on cpu\); "
            r"try max_memory = \"[\d.]+\w+\" \(now 'auto'; the plan then tiles\), size 16, fewer "
            r"or shallower layers, or a free device",
            cell["reason"],
        ), cell["reason"]
        assert cell["iterations_done"] == 2 and cell["frames"] == 1
    assert (result.folder / "sheet.png").is_file()


def test_ctrl_c_in_a_cell_records_every_cell_cancelled(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_job(sweep(), out_root=tmp_path, listeners=[raise_in_cell(0, 4, KeyboardInterrupt())])
    (folder,) = tmp_path.iterdir()
    summary, cells = records(folder)
    assert summary["status"] == "cancelled"
    assert [c["status"] for c in cells] == ["cancelled"] * 4
    # Cell 1 of the batch had not reported step 4 when cell 0's report raised.
    assert [c["iterations_done"] for c in cells] == [4, 2, 0, 0]
    assert cells[0]["reason"] == "cancelled at iteration 4 (KeyboardInterrupt)"
    assert cells[2]["reason"] == "not run: the job stopped (KeyboardInterrupt)"


def test_sigterm_during_a_sweep_records_every_cell_and_exits_130(tmp_path: Path) -> None:
    preset = tmp_path / "faults.toml"
    base = tiny_config(iterations=400, sav_freq=2, lr=0.5)
    from nst_tui.presets import sweep_toml

    preset.write_text(base.to_toml("faults") + sweep_toml(TABLE))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nst_tui.cli", "run", "--preset", str(preset), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # a frame of the first batch is on disk
            if list(out.glob("*/00-*/.frames/*.png")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the sweep never wrote a frame")
        os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    folder = Path(stdout.strip().splitlines()[-1])
    summary, cells = records(folder)
    assert summary["status"] == "cancelled"
    assert [c["status"] for c in cells] == ["cancelled"] * 4
    assert cells[0]["iterations_done"] > 0


def test_a_sweep_cells_run_json_has_every_field_a_single_runs_has(tmp_path: Path) -> None:
    cfg = tiny_config(iterations=4, sav_freq=2)
    alone = run_single(cfg, out_root=tmp_path / "one").folder
    single = json.loads((alone / "run.json").read_text())
    job = expand(cfg, {"content_layers": [[1], [3]]}, "fields")  # one batch of two
    result = run_job(job, out_root=tmp_path / "sweep")
    for cell in result.cells:
        record = json.loads((cell.folder / "run.json").read_text())
        assert set(single) <= set(record), set(single) - set(record)
        assert set(record) - set(single) == {"sweep"}
        assert record["accel"] == single["accel"]
        assert record["gflop_per_iteration"] > 0 and record["tflop_s"] > 0


def test_after_sigkill_cells_that_never_started_say_not_run(tmp_path: Path) -> None:
    # Nothing can be written at a SIGKILL: what a cell's run.json says then is what it said
    # before. L-BFGS cells run one batch each: killed during cell 0, cell 1 never started.
    from conftest import snapshot_config

    from nst_tui.presets import sweep_toml
    from nst_tui.records import interruption

    preset = tmp_path / "killed.toml"
    base = snapshot_config(optimizer="lbfgs", iterations=400, sav_freq=2)
    preset.write_text(base.to_toml("killed") + sweep_toml({"content_layers": [[1], [3]]}))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "nst_tui.cli", "run", "--preset", str(preset), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/00-*/.frames/*.png")):
            assert time.monotonic() < deadline, "the sweep never wrote a frame"
            time.sleep(0.1)
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    (folder,) = out.iterdir()
    (ran,) = folder.glob("00-*")
    (waited,) = folder.glob("01-*")
    assert json.loads((ran / "run.json").read_text())["status"] == "running"
    info = json.loads((waited / "run.json").read_text())
    assert info["status"] == "not run"
    assert info["reason"].startswith("not run: ")
    assert not (waited / "final.png").exists()
    assert "not run" in interruption(waited)
