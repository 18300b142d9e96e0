"""Run folders: unique names, atomic files, frame counts, a cancelled run still recorded."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from conftest import run_single as run
from conftest import tiny_config
from PIL import Image

from nst_tui.engine.events import Progress
from nst_tui.records import FILES, new_run_folder
from nst_tui.text import safe_label


def test_folder_names_are_never_reused(tmp_path: Path) -> None:
    folders = {new_run_folder(tmp_path, "same") for _ in range(5)}
    assert len(folders) == 5
    assert all(f.parent == tmp_path for f in folders)


def test_labels_cannot_leave_the_outputs_folder(tmp_path: Path) -> None:
    folder = new_run_folder(tmp_path, "../../etc/passwd")
    assert folder.parent == tmp_path
    assert "/" not in safe_label("a/b\\c") and safe_label("..") == "run"


def test_concurrent_runs_get_their_own_folders(tmp_path: Path) -> None:
    made: list[Path] = []
    threads = [
        threading.Thread(target=lambda: made.append(new_run_folder(tmp_path, "x")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8


def test_a_run_writes_every_file_and_nothing_else(tmp_path: Path) -> None:
    cfg = tiny_config(iterations=12, sav_freq=5, fps=10)
    result = run(cfg, out_root=tmp_path, label="t")
    names = sorted(p.name for p in result.folder.iterdir())
    assert names == sorted(FILES)  # no temporary or frame files left behind
    info = json.loads((result.folder / "run.json").read_text())
    assert info["status"] == "finished" and info["iterations_done"] == 12
    assert info["backbone"] == "vgg16-caffe" and info["device"] == "cpu"
    with Image.open(result.folder / "animation.gif") as gif:
        assert gif.n_frames == math.ceil(12 / 5) == info["frames"]
        assert gif.info["duration"] == 100
    with Image.open(result.folder / "final.png") as final:
        assert final.size == (32, 24)
    rows = (result.folder / "losses.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,elapsed_s,total,content,style,tv,content/conv4_1")
    assert [r.split(",")[0] for r in rows[1:]] == ["5", "10", "12"]


def test_a_cancelled_run_keeps_its_frames_marked(tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_at_4(event: object) -> None:
        if isinstance(event, Progress) and event.iteration == 4:
            cancel.set()

    cfg = tiny_config(iterations=40, sav_freq=2)
    result = run(cfg, out_root=tmp_path, label="c", listeners=[stop_at_4], cancel=cancel)
    info = json.loads((result.folder / "run.json").read_text())
    assert info["status"] == "cancelled" and info["iterations_done"] == 4
    with Image.open(result.folder / "animation.gif") as gif:
        assert gif.n_frames == 2
