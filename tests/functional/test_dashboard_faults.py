"""The dashboard under bad input and faults: it says what went wrong and keeps running."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from conftest import tiny_config
from PIL import Image
from test_dashboard import SIZE, history_row, make_app, type_into, wait_for_run, wait_until_running
from textual.widgets import OptionList

from nst_tui import presets, records
from nst_tui.config import Config
from nst_tui.engine.objective import Objective
from nst_tui.tui.app import NSTApp
from nst_tui.tui.screens.preset_picker import PresetPicker


def notes(app: NSTApp) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


async def run_once(pilot: Any, app: NSTApp) -> None:
    await pilot.press("ctrl+r")
    await wait_for_run(pilot, app)


async def test_out_of_memory_says_so_and_the_next_run_works(tmp_path: Path, monkeypatch) -> None:
    original = Objective.forward

    def forward(self: Objective, canvas: torch.Tensor, index: object = None) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    app = make_app(tmp_path, tiny_config(iterations=4, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        monkeypatch.setattr(Objective, "forward", forward)
        await run_once(pilot, app)
        assert app.session.jobs[1].record.status == "failed"
        assert "Run 1 failed: out of device memory at size 32; try a smaller size" in notes(app)
        folder = app.session.jobs[1].record.folder
        assert json.loads((folder / "run.json").read_text())["status"] == "failed"

        monkeypatch.setattr(Objective, "forward", original)
        await run_once(pilot, app)
        assert app.session.jobs[2].record.status == "finished"


async def test_a_full_disk_is_shown_and_the_app_keeps_running(tmp_path: Path, monkeypatch) -> None:
    real_open = open
    opened = {"n": 0}

    def full_after_two(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode:
            opened["n"] += 1
            if opened["n"] > 2:  # config.toml and the first frame fit; then the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    app = make_app(tmp_path, tiny_config(iterations=6, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        monkeypatch.setattr(records, "open", full_after_two, raising=False)
        await run_once(pilot, app)
        assert app.session.jobs[1].record.status == "failed"
        assert "No space left on device" in app.session.jobs[1].record.reason
        assert "Run 1 failed: could not write" in notes(app)
        assert app.status.state.state == "failed"

        monkeypatch.undo()
        await run_once(pilot, app)
        assert app.session.jobs[2].record.status == "finished"


async def test_bad_weights_and_outputs_are_reported_per_run(tmp_path: Path) -> None:
    weights = tmp_path / "cut.pth"
    weights.write_bytes(b"PK\x03\x04 not really a zip")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app = make_app(tmp_path, tiny_config(iterations=2, backbone=str(weights)))
    async with app.run_test(size=SIZE) as pilot:
        # Damaged weights are found before a run (the form checks the file's header).
        assert "a damaged or truncated zip archive" in app.form.errors["backbone"]
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.session.jobs

        app.form.widget("backbone").value = "vgg16-caffe"
        app.outputs = blocker / "outputs"
        await run_once(pilot, app)
        reason = app.session.jobs[1].record.reason
        assert "sits under" in reason and "a file, not a folder" in notes(app)

        app.outputs = tmp_path / "outputs"
        await run_once(pilot, app)
        assert [j.record.status for j in app.session.jobs.values()] == ["failed", "finished"]


async def test_an_animated_gif_says_which_frame_is_used(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (48, 40), c) for c in ("red", "green", "blue")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    app = make_app(tmp_path, tiny_config(iterations=2, style_image=str(gif)))
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            if "animated" in notes(app):
                break
            await pilot.pause(0.05)
        assert f"style image: style '{gif}': animated (3 frames); using its first frame" in notes(
            app
        )
        await run_once(pilot, app)
        assert app.session.jobs[1].record.status == "finished"
        record = json.loads((app.session.jobs[1].record.folder / "run.json").read_text())
        assert record["notes"] == [
            f"style_image '{gif}': animated (3 frames); using its first frame"
        ]


async def test_markup_in_values_and_paths_never_crashes(tmp_path: Path) -> None:
    weird = tmp_path / "[/x] [bold].jpg"
    app = make_app(tmp_path, tiny_config(iterations=2))
    async with app.run_test(size=SIZE) as pilot:
        await type_into(pilot, app, "size", "[/x]")
        assert str(app.query_one("#error-size").render()) == "must be a whole number, got '[/x]'"
        await type_into(pilot, app, "size", "32")
        app.form.widget("content_image").value = str(weird)
        await pilot.pause()
        assert app.form.errors["content_image"] == f"content_image '{weird}': no such file"
        await pilot.press("ctrl+r")  # blocked: the message names the file as written
        await pilot.pause()
        assert f"content_image '{weird}': no such file" in notes(app)
        weird.parent.mkdir(exist_ok=True)  # "[/x] ..." is a folder "[" and a file in it
        Image.new("RGB", (48, 40), "red").save(weird, format="JPEG")
        app.form.check()
        await run_once(pilot, app)
        assert "[/x] [bold].jpg" in history_row(app, 1)["changes"]
        await pilot.pause(0.5)  # the thumbnail's message is drawn too
        assert app.is_running


async def test_an_invalid_preset_is_listed_as_such_and_others_still_load(tmp_path: Path) -> None:
    folder = presets.user_dir()
    (folder / "broken.toml").write_text("size = [32\n")
    (folder / "deep.toml").write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    presets.save(Config(iterations=9), "fine")
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PresetPicker)
        options = app.screen.query_one(OptionList)
        texts = {
            str(options.get_option_at_index(i).prompt): options.get_option_at_index(i)
            for i in range(options.option_count)
        }
        broken = [t for t in texts if t.startswith(("broken", "deep"))]
        assert len(broken) == 2 and all("invalid" in t for t in broken)
        index = next(i for i, o in enumerate(texts.values()) if (o.id or "").endswith("fine.toml"))
        options.highlighted = index
        await pilot.press("enter")
        await pilot.pause()
        assert app.form.widget("iterations").value == "9"


async def test_sigterm_cancels_records_and_exits(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=5000, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        app.handle_signal(signal.SIGTERM)  # what the event loop calls on the real signal
        waited = 0.0
        while app.is_running and waited < 30:
            await pilot.pause(0.05)
            waited += 0.05
    assert app.return_value == 128 + signal.SIGTERM  # the exit status run_dashboard returns
    info = json.loads((app.session.jobs[1].record.folder / "run.json").read_text())  # type: ignore[operator]
    assert info["status"] == "cancelled" and info["frames"] >= 1


async def test_sighup_when_idle_exits_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.handle_signal(signal.SIGHUP)
        await pilot.pause()
    assert app.return_value == 128 + signal.SIGHUP
    assert not app.session.jobs


async def test_an_app_that_ends_any_other_way_still_records_its_run(tmp_path: Path) -> None:
    app = make_app(tmp_path, tiny_config(iterations=5000, sav_freq=1))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+r")
        await wait_until_running(pilot, app)
        folder_root = tmp_path / "outputs"
        app.exit(3)  # not through quit: as an error in the app would end it
        await pilot.pause()
    deadline = time.monotonic() + 30

    def status() -> str:  # run.json says running from the start, until the record is done
        records = list(folder_root.glob("*/run.json"))
        return json.loads(records[0].read_text())["status"] if records else "none yet"

    while status() in ("none yet", "running"):
        assert time.monotonic() < deadline, "the run was not stopped and recorded"
        time.sleep(0.05)
    assert status() == "cancelled"
