"""The viewer and its frame stepper, driven by keys: which image pixel is at which cell at
fit, at 1:1 and panned; frame k at iteration k * sav_freq with its losses; a running run
followed; bad files and folders without frames said, never a crash; a 4096 px final image
read off the UI thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fake_runs import fake_run, losses_at
from PIL import Image
from textual.app import App
from textual.pilot import Pilot

from nst_tui.frame_store import FrameStore
from nst_tui.tui.screens.viewer import FOLLOW_S, ViewerScreen, ViewSource
from nst_tui.tui.widgets.loss_panel import short
from nst_tui.tui.widgets.pixels import PixelView

SIZE = (100, 30)


class Host(App[None]):
    def __init__(self, source: ViewSource, frames: bool = False) -> None:
        super().__init__()
        self.source, self.frames = source, frames

    def on_mount(self) -> None:
        self.push_screen(ViewerScreen(self.source, self.frames))


def viewer(pilot: Pilot) -> ViewerScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ViewerScreen)
    return screen


async def settled(pilot: Pilot, timeout: float = 20.0) -> ViewerScreen:
    """Until no worker of the viewer runs and what it asked for is drawn."""
    waited = 0.0
    while True:
        await pilot.pause(0.02)
        waited += 0.02
        screen = pilot.app.screen
        busy = (
            any(w.is_running for w in screen.workers) if isinstance(screen, ViewerScreen) else True
        )
        idle = isinstance(screen, ViewerScreen) and not busy
        drawn = idle and not screen._loading and not screen._rendering
        if drawn and (screen.picture is not None or screen.note):
            await pilot.pause()
            return screen
        assert waited < timeout, "the viewer did not settle"


def readout(screen: ViewerScreen) -> str:
    return str(screen.query_one("#viewer-readout").render())


def cell_colours(
    view: PixelView, col: int, row: int
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The (upper, lower) pixel colours a half-block cell shows."""
    strip = view.render_line(row)
    x = 0
    for segment in strip:
        width = len(segment.text)
        if x <= col < x + width:
            style = segment.style
            assert style is not None and style.bgcolor is not None and style.color is not None
            return tuple(style.bgcolor.triplet), tuple(style.color.triplet)  # type: ignore[return-value]
        x += width
    raise AssertionError(f"no cell {col}")


async def test_fit_then_one_to_one_then_panned_each_cell_shows_the_pixel_the_readout_says(
    tmp_path: Path,
) -> None:
    # The final image's pixel (x, y) is red x, green y (fake_runs.frame_pixels).
    folder = fake_run(tmp_path, size=(240, 200))
    async with Host(ViewSource("run", folder)).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert screen.view is not None and screen.view.is_fit
        assert readout(screen).startswith("fit ") and "of 240×200" in readout(screen)
        await pilot.press("1")
        screen = await settled(pilot)
        view = screen.view
        assert view is not None and view.scale == 1.0
        assert readout(screen).startswith("1:1 · x ")
        await pilot.press("right", "right", "down")
        screen = await settled(pilot)
        view = screen.view
        assert view is not None
        left, top, _, _ = view.box()
        canvas = screen.canvas
        cols, rows = canvas.content_size
        assert f"x {left}-" in readout(screen) and f"y {top}-" in readout(screen)
        for col, row in [(0, 0), (7, 3), (cols - 1, rows - 1)]:
            upper, lower = cell_colours(canvas, col, row)
            x, y = view.pixel_at(col, row, 0)  # type: ignore[misc]
            assert (x, y) == (left + col, top + 2 * row)
            assert upper[:2] == (x % 256, y % 256) and lower[:2] == (x % 256, (y + 1) % 256)
        await pilot.press("0")
        screen = await settled(pilot)
        assert screen.view is not None and screen.view.is_fit


async def test_the_frame_stepper_shows_frame_k_at_iteration_k_times_sav_freq(
    tmp_path: Path,
) -> None:
    folder = fake_run(tmp_path, iterations=60, sav_freq=10)
    async with Host(ViewSource("run", folder)).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert "6 frames" in readout(screen)
        for k in range(1, 7):
            await pilot.press("right_square_bracket")
            screen = await settled(pilot)
            text = readout(screen)
            assert f"frame {k}/6 · iteration {10 * k}" in text
            losses = losses_at(10 * k)
            assert f"total {short(losses['total'])}" in text
            assert f"content {short(losses['content'])}" in text
            blue = screen.picture.image.getpixel((3, 3))[2]  # type: ignore[union-attr]
            assert abs(blue - (40 * k) % 256) <= 8  # the picture is frame k's
        await pilot.press("right_square_bracket")  # past the last: stays
        screen = await settled(pilot)
        assert "frame 6/6" in readout(screen)
        await pilot.press("home")
        screen = await settled(pilot)
        assert "frame 1/6 · iteration 10" in readout(screen)
        await pilot.press("l")
        screen = await settled(pilot)
        assert "final" in readout(screen)


async def test_play_runs_through_the_frames_at_the_run_s_fps(tmp_path: Path) -> None:
    # 10 frames at 5 fps: 2 s of play, longer than a loaded machine takes to hand the key
    # over (at 20 fps CI once saw the play end before the check that it had begun).
    folder = fake_run(tmp_path, iterations=100, sav_freq=10, fps=5)
    async with Host(ViewSource("run", folder), frames=True).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert "frame 1/10" in readout(screen)
        await pilot.press("space")
        assert screen.playing
        for _ in range(200):
            await pilot.pause(0.05)
            if not screen.playing:
                break
        assert not screen.playing  # stopped at the end
        screen = await settled(pilot)
        assert "frame 10/10 · iteration 100" in readout(screen)


async def test_a_running_run_is_followed_frame_by_frame(tmp_path: Path) -> None:
    folder = fake_run(tmp_path, iterations=30, sav_freq=10, finish=False)
    running = threading.Event()
    running.set()
    source = ViewSource("run", folder, running=running.is_set)
    async with Host(source).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert "frame 3 (newest)" in readout(screen)
        newest = sorted((folder / ".frames").glob("*.png"))[-1]
        Image.open(newest).save(folder / ".frames" / f"{40:09d}.png")
        await pilot.pause(FOLLOW_S * 1.5)
        screen = await settled(pilot)
        assert "frame 4 (newest)" in readout(screen) and len(screen.frames) == 4


async def test_a_corrupt_frame_is_said_and_the_others_still_show(tmp_path: Path) -> None:
    folder = fake_run(tmp_path, iterations=30, sav_freq=10, finish=False)
    frames = sorted((folder / ".frames").glob("*.png"))
    frames[1].write_bytes(b"not a png at all")
    async with Host(ViewSource("run", folder), frames=True).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert "frame 1/3" in readout(screen)
        await pilot.press("right_square_bracket")
        screen = await settled(pilot)
        assert "frame 2/3" in readout(screen) and "cannot be read" in readout(screen)
        await pilot.press("right_square_bracket")
        screen = await settled(pilot)
        assert "frame 3/3" in readout(screen) and "cannot be read" not in readout(screen)
        assert screen.picture is not None


async def test_a_folder_from_an_older_version_without_frames_says_so(tmp_path: Path) -> None:
    folder = fake_run(tmp_path)
    (folder / "animation.gif").unlink()
    async with Host(ViewSource("run", folder)).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert "final" in readout(screen) and "no saved frames" in readout(screen)
        await pilot.press("right_square_bracket", "space")
        await pilot.pause()
        assert any("no saved frames" in str(n.message) for n in pilot.app._notifications)
        assert screen.picture is not None  # the final image still shows


async def test_a_missing_folder_and_final_fall_back_to_the_picture_in_memory(
    tmp_path: Path,
) -> None:
    preview = Image.new("RGB", (40, 30), (200, 10, 10))
    source = ViewSource("run", tmp_path / "gone", image=preview)
    async with Host(source).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert screen.picture is not None and screen.picture.what == "preview"
        assert "not a folder" in readout(screen)
    async with Host(ViewSource("nothing")).run_test(size=SIZE) as pilot:
        screen = await settled(pilot)
        assert screen.picture is None and "nothing to show" in readout(screen)


async def test_a_4096_px_final_image_is_decoded_off_the_ui_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    Image.effect_mandelbrot((4096, 4096), (-2, -1.5, 1, 1.5), 100).convert("RGB").save(
        folder / "final.png", compress_level=1
    )
    threads: list[str] = []
    final = FrameStore.final

    def watched(self: FrameStore, *args: object, **kwargs: object) -> Image.Image:
        threads.append(threading.current_thread().name)
        return final(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FrameStore, "final", watched)
    async with Host(ViewSource("big", folder)).run_test(size=(160, 48)) as pilot:
        screen = await settled(pilot, timeout=60)
        assert screen.picture is not None and screen.picture.full == (4096, 4096)
        assert max(screen.picture.image.size) <= 1024  # a fit view reads a downscaled copy
        await pilot.press("1")
        screen = await settled(pilot, timeout=60)
        assert screen.picture.image.size == (4096, 4096)  # 1:1 needs the whole: read once
        assert readout(screen).startswith("1:1")
    assert threads and threading.main_thread().name not in threads
