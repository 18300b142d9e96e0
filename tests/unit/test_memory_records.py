"""What a run keeps of its memory: run.json's plan beside the measured peak; frames (the
GIF's, the previews') downscaled from a large canvas while final.png stays whole."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from PIL import Image

from nst_tui import heap
from nst_tui.engine.tensors import FRAME_EDGE, frame_on_device, to_uint8
from nst_tui.heap import set_allocator
from nst_tui.job.plan import single
from nst_tui.job.run import run_job
from nst_tui.probe import peak_rss, reset_peak
from nst_tui.records import Hurried, write_gif


def test_run_json_records_the_plan_and_the_measured_peak(tmp_path: Path) -> None:
    result = run_job(single(tiny_config()), out_root=tmp_path)
    memory = json.loads((result.folder / "run.json").read_text())["memory"]
    assert memory["plan"] == "fits" and memory["budget"] == "auto"
    assert memory["device"] == "cpu" and memory["budget_bytes"] > 0
    assert memory["predicted_peak_bytes"] >= memory["untiled_peak_bytes"] > 0
    assert memory["measured_peak_bytes"] > 100 << 20  # the process: torch and all
    assert memory["measured_by"].startswith("peak RSS of the process")
    assert memory["allocator"] == "roomy"  # far below its budget: glibc's faster reuse


def test_a_forced_tile_is_recorded(tmp_path: Path) -> None:
    config = tiny_config(size=64, tile=32, iterations=2, sav_freq=1)
    result = run_job(single(config), out_root=tmp_path)
    memory = json.loads((result.folder / "run.json").read_text())["memory"]
    assert memory["tile"] == 32 and memory["tiles"] == "2x2"
    assert memory["plan"] == "2×2 tiles of 32 px"
    assert memory["allocator"] == "tight"  # in tiles: memory held as the plan counts it
    assert heap._allocator[-1] == "tight"  # as the run set it
    set_allocator(False)


def test_the_plan_recorded_is_the_one_the_run_ran_by(tmp_path: Path, monkeypatch) -> None:
    # The batch is planned before the weights load (the allocator's choice), and again once
    # they are in (the tiles). Before, run.json kept the first plan: at 2048 px in 3 GiB it
    # said 3×4 tiles of 512 px where the run went in 4×5 of 416. Here the first plan is
    # made to say other tiles than the second.
    from nst_tui.job import lifecycle

    run_plan = lifecycle.run_plan
    monkeypatch.setattr(
        lifecycle, "run_plan", lambda cfgs, device: run_plan([cfgs[0].replace(tile=48)], device)
    )
    config = tiny_config(size=64, tile=32, iterations=2, sav_freq=1)
    result = run_job(single(config), out_root=tmp_path)
    memory = json.loads((result.folder / "run.json").read_text())["memory"]
    assert memory["tile"] == 32 and memory["plan"] == "2×2 tiles of 32 px"
    set_allocator(False)


def test_frames_of_a_large_canvas_are_downscaled_and_final_png_is_whole(tmp_path: Path) -> None:
    config = tiny_config(
        size=FRAME_EDGE + 76, content_layers=[0], style_layers=[0], iterations=2, sav_freq=1
    )
    result = run_job(single(config), out_root=tmp_path)
    with Image.open(result.folder / "final.png") as final:
        assert max(final.size) == FRAME_EDGE + 76
    with Image.open(result.folder / "animation.gif") as gif:
        assert max(gif.size) == FRAME_EDGE and gif.n_frames == 2


def test_a_frame_is_at_most_frame_edge_and_final_images_are_not_shrunk() -> None:
    canvas = torch.rand(1, 3, 1500, 3000)
    assert tuple(frame_on_device(canvas).shape) == (512, 1024, 3)
    assert to_uint8(canvas).shape == (1500, 3000, 3)
    small = torch.rand(1, 3, 40, 30)
    assert torch.equal(frame_on_device(small), torch.from_numpy(to_uint8(small)))


def test_the_gif_is_written_a_frame_at_a_time(tmp_path: Path) -> None:
    made: list[int] = []

    def frames():
        for k in range(5):
            made.append(k)
            yield Image.new("RGB", (64, 48), (k * 40, 0, 0))

    assert write_gif(tmp_path / "a.gif", frames(), fps=10) == 5
    assert made == [0, 1, 2, 3, 4]
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 5
    assert write_gif(tmp_path / "none.gif", iter([]), fps=10) == 0
    assert not (tmp_path / "none.gif").exists()


def test_a_hurry_mid_gif_leaves_no_file(tmp_path: Path) -> None:
    hurry = threading.Event()

    def frames():
        yield Image.new("RGB", (8, 8))
        hurry.set()
        yield Image.new("RGB", (8, 8))

    with pytest.raises(Hurried):
        write_gif(tmp_path / "a.gif", frames(), fps=10, hurry=hurry)
    assert list(tmp_path.iterdir()) == []


def test_the_peak_can_be_measured_afresh() -> None:
    if not reset_peak():
        pytest.skip("this system cannot reset a process's peak resident memory")
    before = peak_rss()
    block = bytearray(256 << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert peak_rss() >= before + (200 << 20)
    del block
    reset_peak()
    assert peak_rss() < before + (200 << 20)


def test_a_worker_splits_a_batch_its_device_cannot_hold(monkeypatch) -> None:
    """On a Ray worker (or any process) the batch is planned again for the device it got:
    cells that do not fit together run in smaller batches, one after another."""
    from nst_tui.engine.events import Finished
    from nst_tui.job import lifecycle
    from nst_tui.job.events import BatchStarted, CellEvent
    from nst_tui.job.plan import Batch, expand

    job = expand(tiny_config(iterations=2), {"content_layers": [[1], [2], [3]]})
    monkeypatch.setattr(lifecycle, "batch_fits", lambda cfgs, *a: len(cfgs) <= 2)
    events: list[object] = []
    cells = list(job.cells)
    lifecycle.run_batch(0, Batch((0, 1, 2), True), cells, events.append, threading.Event())
    started = [e for e in events if isinstance(e, BatchStarted)]
    assert [(e.cells, e.batched) for e in started] == [((0, 1), True), ((2,), False)]
    ended = [e.cell for e in events if isinstance(e, CellEvent) and isinstance(e.event, Finished)]
    assert sorted(ended) == [0, 1, 2]


def test_tight_memory_goes_back_when_freed_and_roomy_is_kept_until_the_run_ends() -> None:
    # What set_allocator changes, seen in the resident memory of a fresh process (in this
    # one, earlier runs' free blocks would serve the allocation from the heap): a freed
    # 16 MiB block goes back to the system when tight and stays in the heap for the next
    # step when roomy, until the run's end gives it back (give_back_heap) or going tight
    # again does.
    script = """
from nst_tui.heap import give_back_heap, set_allocator
from nst_tui.probe import own_rss

def touched():
    block = bytearray(16 << 20)  # malloc'd (CPython hands large objects to malloc)
    block[::4096] = b"x" * len(block[::4096])  # resident, all of it
    return block

def given_back_when_freed():
    block = touched()
    held = own_rss()
    del block
    return held - own_rss()

if set_allocator(True) is None:
    print("no mallopt")
else:
    tight = given_back_when_freed()
    set_allocator(False)
    roomy = given_back_when_freed()
    kept = own_rss()
    give_back_heap()
    at_the_end = kept - own_rss()
    roomy_again = given_back_when_freed()
    kept = own_rss()
    set_allocator(True)
    print(tight >> 20, roomy >> 20, at_the_end >> 20, roomy_again >> 20, (kept - own_rss()) >> 20)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    if done.stdout.strip() == "no mallopt":
        pytest.skip("not glibc: no mallopt")
    tight, roomy, at_the_end, roomy_again, trimmed = map(int, done.stdout.split())
    assert tight >= 15 and roomy < 4 and at_the_end >= 12
    assert roomy_again < 4 and trimmed >= 12


def test_tight_memory_after_roomy_runs_is_mapped_on_its_own() -> None:
    # A roomy run leaves its blocks' address space as a hole in the heap (a live block
    # above keeps the heap from shrinking). Going tight, the hole is held (heap.plug_holes),
    # so a tight block is mapped on its own and goes back when freed, as in a fresh
    # process; cut from the hole, it would stay resident (0 MiB back, measured).
    script = """
from nst_tui.heap import set_allocator
from nst_tui.probe import own_rss

def touched(n):
    block = bytearray(n)
    block[::4096] = b"x" * len(block[::4096])
    return block

if set_allocator(False) is None:
    print("no mallopt")
else:
    blocks = [touched(8 << 20) for _ in range(8)]  # 64 MiB from the heap (roomy)
    above = [bytearray(256 << 10) for _ in range(10)]  # live, above them
    del blocks
    set_allocator(True)
    block = touched(16 << 20)
    held = own_rss()
    del block
    print((held - own_rss()) >> 20)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    if done.stdout.strip() == "no mallopt":
        pytest.skip("not glibc: no mallopt")
    assert int(done.stdout) >= 15
