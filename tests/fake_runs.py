"""Run folders written by the real recorder from made-up events: no torch, in milliseconds.

Each frame k (0-based) is at iteration (k + 1) * sav_freq with losses that say which frame
it is (total = 1000 / iteration, content = 10 * iteration), and its pixels say it too: the
blue channel of every pixel is 4 * iteration (mod 256), the red one the column, the green
one the row (mod 256).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nst_tui.config import Config
from nst_tui.engine.events import Finished, Frame, Progress
from nst_tui.records import RunRecorder, new_run_folder


def frame_pixels(iteration: int, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    blue = np.full_like(x, (4 * iteration) % 256)
    return np.stack([x % 256, y % 256, blue], -1).astype(np.uint8)


def losses_at(iteration: int) -> dict[str, float]:
    return {"total": 1000.0 / iteration, "content": 10.0 * iteration, "style": 2.5, "tv": 0.5}


def fake_run(
    root: Path,
    *,
    size: tuple[int, int] = (64, 48),
    iterations: int = 50,
    sav_freq: int = 10,
    fps: int = 30,
    finish: bool = True,
    label: str = "fake",
) -> Path:
    """A run folder as `nst-tui run` leaves it (finish=False: as a running run has it)."""
    cfg = Config(size=max(size), iterations=iterations, sav_freq=sav_freq, fps=fps)
    folder = new_run_folder(root, label)
    recorder = RunRecorder(cfg, label, folder)
    image = frame_pixels(0, *size)
    for it in [*range(sav_freq, iterations + 1, sav_freq)]:
        image = frame_pixels(it, *size)
        recorder(Progress(it, iterations, losses_at(it), 10.0, it / 10))
        recorder(Frame(it, image))
    if finish:
        recorder(Finished("finished", "", iterations, 5.0, 10.0, losses_at(iterations), image))
    else:
        recorder._drain_frames()  # the frames on disk, as a running run has them
    return folder
