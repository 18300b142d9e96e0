"""Faults during a run lose nothing: the record is written, marked, with the frames so far.

Out-of-memory and a full disk cannot be produced for real on a CPU test box:
the objective (or the file writes) are patched to fail the way torch and the OS do.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TUBINGEN, tiny_config
from conftest import run_single as run
from PIL import Image

from nst_tui import records
from nst_tui.engine.events import Finished, Progress
from nst_tui.engine.objective import Objective
from nst_tui.errors import RunError
from nst_tui.job import lifecycle
from nst_tui.records import FILES, new_run_folder, write_atomic


def fail_on_call(monkeypatch: pytest.MonkeyPatch, n: int, error: Any) -> None:
    """The objective raises `error` on its n-th call (error(terms) for a NaN)."""
    original = Objective.forward
    calls = {"n": 0}

    def forward(self: Objective, canvas: torch.Tensor, index: Any = None) -> torch.Tensor:
        calls["n"] += 1
        terms = original(self, canvas, index)
        if calls["n"] >= n:
            if isinstance(error, BaseException):
                raise error
            return error(terms)
        return terms

    monkeypatch.setattr(Objective, "forward", forward)


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "run.json").read_text())


def gif_frames(folder: Path) -> int:
    with Image.open(folder / "animation.gif") as gif:
        return gif.n_frames


def leftovers(folder: Path) -> list[str]:
    """Files a finished record should not hold: scratch files or frames."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


# ---- divergence and out of memory -------------------------------------------------------


def test_divergence_is_recorded_failed_with_the_frames_so_far(tmp_path: Path, monkeypatch) -> None:
    fail_on_call(monkeypatch, 5, lambda terms: terms * float("nan"))
    result = run(tiny_config(iterations=20, sav_freq=2), out_root=tmp_path)
    info = record(result.folder)
    assert info["status"] == "failed" and result.finished.status == "failed"
    assert info["reason"].startswith("diverged at iteration 6: loss became nan; try a lower lr")
    assert info["frames"] == gif_frames(result.folder) == 2  # iterations 2 and 4
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(FILES)


def test_out_of_memory_in_the_loop_fails_the_run_and_the_next_run_works(
    tmp_path: Path, monkeypatch
) -> None:
    fail_on_call(monkeypatch, 5, torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    result = run(tiny_config(iterations=20, sav_freq=2), out_root=tmp_path)
    info = record(result.folder)
    assert info["status"] == "failed"
    assert "out of device memory at size 32; try a smaller size" in info["reason"]
    assert info["frames"] == 2
    monkeypatch.undo()
    again = run(tiny_config(iterations=3), out_root=tmp_path)
    assert again.finished.status == "finished"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
        ),
        MemoryError(),
    ],
    ids=["cpu-allocator", "MemoryError"],
)
def test_host_memory_running_out_is_a_failed_run_with_a_smaller_size(
    tmp_path: Path, monkeypatch, error: BaseException
) -> None:
    heard: list[object] = []
    fail_on_call(monkeypatch, 5, error)
    result = run(
        tiny_config(iterations=20, sav_freq=2), out_root=tmp_path, listeners=[heard.append]
    )
    info = record(result.folder)
    assert info["status"] == "failed"
    # What the plan expected (this machine's free memory: a pattern), then what to try.
    assert re.fullmatch(
        r"out of memory while running at size 32 on cpu \(planned ≈[\d.]+ \w+ of .* on cpu\); "
        r"try max_memory = \"[\d.]+\w+\" \(now 'auto'; the plan then tiles\), size 16, fewer "
        r"or shallower layers, or a free device",
        info["reason"],
    ), info["reason"]
    assert info["frames"] == 2 and info["iterations_done"] == 4
    assert isinstance(heard[-1], Finished) and heard[-1].status == "failed"
    assert leftovers(result.folder) == []


def test_out_of_memory_while_preparing_is_a_failed_run_with_a_smaller_size(
    tmp_path: Path, monkeypatch
) -> None:
    def prepare(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(lifecycle, "prepare", prepare)
    result = run(tiny_config(), out_root=tmp_path / "out")
    info = record(result.folder)
    assert info["status"] == "failed" and info["iterations_done"] == 0
    assert info["reason"].startswith("out of memory while preparing at size 32 on cpu (planned")
    assert "; try max_memory = " in info["reason"]


def test_device_memory_is_handed_back_after_a_run(monkeypatch) -> None:
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    lifecycle.release_memory(torch.device("cpu"))
    assert emptied == []
    lifecycle.release_memory(torch.device("cuda", 0))
    assert emptied == [True]


# ---- errors and interrupts inside the loop ----------------------------------------------------


def raise_at(iteration: int, error: BaseException) -> Any:
    def listener(event: object) -> None:
        if isinstance(event, Progress) and event.iteration == iteration:
            raise error

    return listener


def test_a_crash_mid_run_is_recorded_then_raised(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a listener broke"):
        run(
            tiny_config(iterations=20, sav_freq=2),
            out_root=tmp_path,
            listeners=[raise_at(4, ValueError("a listener broke"))],
        )
    (folder,) = tmp_path.iterdir()
    info = record(folder)
    assert info["status"] == "failed" and info["reason"] == "ValueError: a listener broke"
    assert info["frames"] == 1  # iteration 2; the crash came before iteration 4's frame
    assert leftovers(folder) == []


def test_an_interrupt_mid_run_is_recorded_cancelled_then_raised(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run(
            tiny_config(iterations=20, sav_freq=2),
            out_root=tmp_path,
            listeners=[raise_at(6, KeyboardInterrupt())],
        )
    (folder,) = tmp_path.iterdir()
    info = record(folder)
    assert info["status"] == "cancelled"
    assert info["reason"] == "cancelled at iteration 6 (KeyboardInterrupt)"
    assert info["frames"] == 2


def test_a_cancel_before_the_loop_still_writes_a_record(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()  # e.g. SIGTERM while the weights were loading
    result = run(tiny_config(), out_root=tmp_path, cancel=cancel)
    info = record(result.folder)
    assert info["status"] == "cancelled" and info["iterations_done"] == 0


# ---- the disk ------------------------------------------------------------------------------------


class FullDisk:
    """`open` for records.py that lets `allowed` files through, then fails every write
    half-way with ENOSPC, as a filling disk does."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed

    def __call__(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = open(path, mode, *args, **kwargs)  # noqa: SIM115 - handed to the caller
        if "w" not in mode:
            return fh
        self.allowed -= 1
        if self.allowed >= 0:
            return fh
        real_write = fh.write

        def write(data: bytes) -> int:
            real_write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        fh.write = write
        return fh


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("allowed", "failing"),
    [(6, ".frames/000000006.png"), (12, "animation.gif")],
    ids=["mid-run", "while-finishing"],
)
def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch, allowed: int, failing: str
) -> None:
    earlier = run(tiny_config(iterations=4, sav_freq=2), out_root=tmp_path).folder
    before = snapshot(earlier)

    # A run of 8 at sav_freq 2 opens config.toml, run.json (running; again once placed),
    # losses.csv (growing), 4 frames, run.json (the measured memory peak), final.png,
    # losses.csv (whole), run.json, then the GIF (the 13th file): 6 files fill the disk
    # at frame 6, 12 at the GIF. This disk
    # never frees (each later write fails too), so not even a failed record fits.
    monkeypatch.setattr(records, "open", FullDisk(allowed), raising=False)
    with pytest.raises(RunError) as info:
        run(tiny_config(iterations=8, sav_freq=2), out_root=tmp_path)
    monkeypatch.undo()
    message = str(info.value)
    assert message.startswith("could not write ") and message.endswith("No space left on device")
    assert failing in message

    (folder,) = [p for p in tmp_path.iterdir() if p != earlier]
    assert not list(folder.rglob("*.tmp")), "no scratch file is left behind"
    final_names = {p.name for p in folder.iterdir()}
    assert Path(failing).name not in final_names  # nothing half-written under a final name
    for name in final_names & set(FILES):
        if name.endswith(".png"):
            with Image.open(folder / name) as im:
                im.load()  # whatever carries a final name is whole
    assert snapshot(earlier) == before, "earlier runs are untouched"


def test_a_recorder_that_cannot_start_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(records, "open", FullDisk(0), raising=False)
    with pytest.raises(RunError, match=r"config\.toml: No space left on device"):
        run(tiny_config(), out_root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_outputs_folder_under_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder should be")
    # The images are missing too: the outputs folder is checked first, at once.
    cfg = tiny_config(content_image=str(tmp_path / "missing.jpg"))
    with pytest.raises(RunError) as info:
        run(cfg, out_root=blocker / "outputs")
    assert str(info.value) == (
        f"outputs folder {blocker / 'outputs'}: sits under {blocker}, a file, not a folder"
    )
    with pytest.raises(RunError, match="is a file, not a folder"):
        run(cfg, out_root=blocker)
    assert blocker.read_text() == "a file where a folder should be"


def test_a_read_only_outputs_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        # root writes anywhere whatever the mode: have the OS answer as it would a user.
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, m: False if Path(p) == locked else real_access(p, m)
        )
    else:
        locked.chmod(0o555)
    with pytest.raises(RunError, match=f"outputs folder {locked}/runs: not writable"):
        new_run_folder(locked / "runs", "x")
    monkeypatch.undo()

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)  # the folder vanishes or locks after the check
    with pytest.raises(RunError, match="cannot create it \\(Permission denied\\)"):
        new_run_folder(tmp_path / "other", "x")


def test_two_writers_of_one_path_never_mix_their_bytes(tmp_path: Path) -> None:
    target = tmp_path / "same.bin"
    payloads = [bytes([i]) * 2_000_000 for i in (1, 2)]

    def writer(data: bytes) -> None:
        for _ in range(10):
            write_atomic(target, data)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["same.bin"]


def test_a_failing_writer_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    write_atomic(target, b"old and whole")

    def broken(fh: Any) -> None:
        fh.write(b"new but ")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(RunError, match=r"could not write .*run\.json: No space left on device"):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old and whole"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_names_from_presets_stay_inside_the_outputs_folder(tmp_path: Path) -> None:
    for label in ("../../escape", "/etc/cron.d/x", "..", "a/../../b", "\x1b[31mred", ""):
        folder = new_run_folder(tmp_path, label)
        assert folder.parent == tmp_path and folder.name.isprintable()
    result = run(tiny_config(iterations=1, content_image=str(TUBINGEN)), out_root=tmp_path,
                 label="../../../tmp/evil")  # fmt: skip
    assert result.folder.parent == tmp_path
