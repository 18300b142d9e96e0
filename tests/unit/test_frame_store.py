"""The frame store: a run folder's frames with their iterations and losses, from the GIF
of a finished run or the PNGs of a running one, and a clear word when there are none."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from fake_runs import fake_run, losses_at
from PIL import Image

from nst_tui.frame_store import FrameError, FrameStore, downscaled, open_image


def test_a_finished_run_s_frames_come_from_its_gif(tmp_path: Path) -> None:
    folder = fake_run(tmp_path, iterations=50, sav_freq=10)
    assert not (folder / ".frames").exists() and (folder / "animation.gif").is_file()
    store = FrameStore(folder)
    frames = store.frames()
    assert [f.iteration for f in frames] == [10, 20, 30, 40, 50]
    for k, frame in enumerate(frames):
        assert frame.index == k and frame.path is None
        assert frame.losses == pytest.approx(losses_at((k + 1) * 10), rel=1e-5)
        image = store.load(frame)
        assert image.size == (64, 48)
        # The blue channel says which iteration the frame is (GIF palettes round a little).
        assert abs(image.getpixel((5, 5))[2] - 4 * frame.iteration % 256) <= 8
    assert store.fps == 30 and store.sav_freq == 10


def test_a_running_run_s_frames_are_its_pngs_and_grow(tmp_path: Path) -> None:
    folder = fake_run(tmp_path, iterations=30, sav_freq=10, finish=False)
    store = FrameStore(folder)
    frames = store.frames()
    assert [f.iteration for f in frames] == [10, 20, 30]
    assert all(f.path is not None and f.path.parent.name == ".frames" for f in frames)
    shutil.copy(frames[-1].path, folder / ".frames" / f"{40:09d}.png")  # a newer frame lands
    assert [f.iteration for f in store.frames()] == [10, 20, 30, 40]
    assert store.why_none()  # never empty, even when there are frames


def test_stepping_back_and_forth_in_a_gif_gives_the_same_pictures(tmp_path: Path) -> None:
    store = FrameStore(fake_run(tmp_path, iterations=80, sav_freq=10))
    frames = store.frames()
    forth = [store.load(f).tobytes() for f in frames]
    back = [store.load(f, 1000).tobytes() for f in reversed(frames)]  # another size: decoded
    assert back[::-1] == forth


def test_reads_are_downscaled_and_crops_are_full_resolution(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("RGB", (4096, 2048), (10, 20, 30)).save(folder / "final.png")
    store = FrameStore(folder)
    assert store.final(512).size == (512, 256)
    assert store.final(None, box=(100, 100, 260, 190)).size == (160, 90)
    assert downscaled(Image.new("RGB", (300, 100)), 100).size in ((100, 33), (100, 34))


def test_a_folder_without_frames_says_why(tmp_path: Path) -> None:
    folder = fake_run(tmp_path)
    (folder / "animation.gif").unlink()  # as an older version's folder, or a hurried one
    store = FrameStore(folder)
    assert store.frames() == []
    assert "no saved frames" in store.why_none()
    assert "not a folder" in FrameStore(tmp_path / "gone").why_none()
    assert "not a run folder" in FrameStore(tmp_path).why_none()


def test_a_corrupt_or_missing_frame_is_a_frame_error(tmp_path: Path) -> None:
    folder = fake_run(tmp_path, finish=False)
    store = FrameStore(folder)
    frames = store.frames()
    frames[1].path.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(FrameError, match="cannot be read"):
        store.load(frames[1])
    frames[2].path.unlink()
    with pytest.raises(FrameError, match="missing"):
        store.load(frames[2])
    assert store.load(frames[0]).size == (64, 48)  # the others still read


def test_a_cut_gif_is_a_frame_error_and_a_damaged_losses_file_no_error(tmp_path: Path) -> None:
    folder = fake_run(tmp_path)
    gif = folder / "animation.gif"
    gif.write_bytes(gif.read_bytes()[:300])
    (folder / "losses.csv").write_text("iteration,total\nten,1\n20,x\n", encoding="utf-8")
    store = FrameStore(folder)
    frames = store.frames()  # run.json still counts 5; their iterations come from sav_freq
    assert [f.iteration for f in frames] == [10, 20, 30, 40, 50]
    with pytest.raises(FrameError):
        for frame in frames:
            store.load(frame)
    with pytest.raises(FrameError, match="missing"):
        open_image(tmp_path / "nothing.png")


def test_the_store_is_safe_to_share_between_threads(tmp_path: Path) -> None:
    store = FrameStore(fake_run(tmp_path, iterations=100, sav_freq=10))
    frames = store.frames()
    errors: list[BaseException] = []

    def read(order: list[int]) -> None:
        try:
            for k in order:
                assert (
                    abs(
                        store.load(frames[k], 32).getpixel((1, 1))[2]
                        - 4 * frames[k].iteration % 256
                    )
                    <= 8
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=read, args=(o,)) for o in ([*range(10)], [*range(9, -1, -1)])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
