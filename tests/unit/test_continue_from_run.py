"""init = "run:FOLDER" goes on only from a run that finished or was cancelled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from nst_tui.engine.images import run_final
from nst_tui.errors import ImageError


def run_folder(tmp_path: Path, status: str | None, reason: str = "", config: bool = True) -> Path:
    folder = tmp_path / f"run-{status}"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "final.png")  # black, as a failed run leaves it
    if config:
        (folder / "config.toml").write_text("size = 32\n")
    if status is not None:
        (folder / "run.json").write_text(json.dumps({"status": status, "reason": reason}))
    return folder


@pytest.mark.parametrize("status", ["finished", "cancelled"])
def test_finished_and_cancelled_runs_are_continued(tmp_path: Path, status: str) -> None:
    folder = run_folder(tmp_path, status)
    assert run_final(str(folder)) == folder / "final.png"


def test_a_failed_run_is_refused_with_its_reason(tmp_path: Path) -> None:
    folder = run_folder(tmp_path, "failed", "loss became NaN at iteration 12")
    with pytest.raises(ImageError) as info:
        run_final(str(folder))
    message = str(info.value)
    assert "failed (loss became NaN at iteration 12)" in message and str(folder) in message


@pytest.mark.parametrize(("status", "reason"), [("not run", ""), ("cancelled", "not run: x")])
def test_a_sweep_cell_that_never_ran_is_refused_as_such(
    tmp_path: Path, status: str, reason: str
) -> None:
    folder = run_folder(tmp_path, status, reason)
    with pytest.raises(ImageError, match="that sweep cell never ran"):
        run_final(str(folder))


def test_a_run_still_marked_running_is_named_interrupted(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"interrupted \(its run.json still says running"):
        run_final(str(run_folder(tmp_path, "running")))


def test_a_run_without_run_json_is_named_interrupted(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"interrupted \(no run.json\)"):
        run_final(str(run_folder(tmp_path, None)))


def test_unreadable_record_and_sweep_folder(tmp_path: Path) -> None:
    folder = run_folder(tmp_path, "finished")
    (folder / "run.json").write_text("{not json")
    with pytest.raises(ImageError, match=r"run\.json is unreadable"):
        run_final(str(folder))
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text("{}")
    with pytest.raises(ImageError, match=r"a sweep folder; name one of its cells"):
        run_final(str(sweep))


def test_the_engine_uses_the_same_check(tmp_path: Path) -> None:
    from nst_tui.engine.prepare import run_final as engine_run_final

    with pytest.raises(ImageError, match="failed"):
        engine_run_final(str(run_folder(tmp_path, "failed", "diverged")))
