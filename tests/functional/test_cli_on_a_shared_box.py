"""`nst-tui` as a user meets it on a shared box: bad files, signals, a dropped SSH
session, two processes writing one outputs folder.

Bad input exits 2 with one line and starts nothing; a signal or a hang-up during a
run (headless or dashboard) leaves a record marked cancelled with its frames.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import STARRY, TUBINGEN
from PIL import Image

from nst_tui.cli import main
from nst_tui.records import FILES

TINY = [
    "--set", f"content_image={json.dumps(str(TUBINGEN))}",
    "--set", f"style_image={json.dumps(str(STARRY))}",
    "--set", "size=32", "--set", "iterations=3", "--set", "sav_freq=1",
    "--backbone", "vgg16-caffe", "--device", "cpu",
]  # fmt: skip

LONG_PRESET = f"""description = "a run long enough to be interrupted"
content_image = {json.dumps(str(TUBINGEN))}
style_image = {json.dumps(str(STARRY))}
size = 32
iterations = 100000
sav_freq = 1
backbone = "vgg16-caffe"
device = "cpu"
"""


def set_image(path: Path) -> list[str]:
    return ["--set", f"content_image={json.dumps(str(path))}"]


def make_bad_files(folder: Path) -> dict[str, Path]:
    """One of each kind of bad file a user might point at."""
    folder.mkdir()
    files = {name: folder / name for name in ("empty.jpg", "notes.jpg", "cut.jpg", "dot.png")}
    files["empty.jpg"].write_bytes(b"")
    files["notes.jpg"].write_text("not a picture")
    Image.new("RGB", (64, 64), "red").save(folder / "whole.jpg")
    files["cut.jpg"].write_bytes((folder / "whole.jpg").read_bytes()[:200])
    Image.new("RGB", (1, 1)).save(files["dot.png"])
    files["strip.png"] = folder / "strip.png"
    Image.new("RGB", (400, 20)).save(files["strip.png"])
    files["weights.pth"] = folder / "weights.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "features.0.bias": torch.zeros(8)},
               files["weights.pth"])  # fmt: skip
    files["cut.pth"] = folder / "cut.pth"
    files["cut.pth"].write_bytes(files["weights.pth"].read_bytes()[:100])
    files["file"] = folder / "a-file"
    files["file"].write_text("")
    for name, text in [
        ("typo.toml", "itrations = 5\n"),
        ("sweep.toml", "[sweep]\nlayer = [1, 2]\n"),
        ("elsewhere.toml", 'content_image = "/data/on/another/box.jpg"\n'),
        ("broken.toml", "size = [32\n"),
    ]:
        files[name] = folder / name
        files[name].write_text(text)
    return files


CASES: list[tuple[str, Callable[[dict[str, Path]], list[str]], str]] = [
    ("empty image", lambda f: set_image(f["empty.jpg"]), "empty.jpg': the file is empty"),
    ("not an image", lambda f: set_image(f["notes.jpg"]), "not an image Pillow can read"),
    ("truncated", lambda f: set_image(f["cut.jpg"]), "cut.jpg': damaged or truncated image"),
    ("1x1", lambda f: set_image(f["dot.png"]), "1x1 pixels is too small"),
    ("folder", lambda f: set_image(f["dot.png"].parent), "is a folder, not an image file"),
    (
        "too narrow",
        lambda f: set_image(f["strip.png"]),
        "400x20 is too narrow for size 32 (its short side would be 2 px, 16 needed); "
        "use size 310 or more",
    ),
    ("unknown key", lambda f: ["--preset", str(f["typo.toml"])], "did you mean 'iterations'?"),
    ("sweep field", lambda f: ["--preset", str(f["sweep.toml"])], "sweep.layer: unknown field"),
    ("bad toml", lambda f: ["--preset", str(f["broken.toml"])], "broken.toml: invalid TOML"),
    (
        "missing image in a preset",
        lambda f: ["--preset", str(f["elsewhere.toml"])],
        "content_image '/data/on/another/box.jpg': no such file",
    ),
    ("wrong-shape weights", lambda f: ["--backbone", str(f["weights.pth"])], "1 conv layers;"),
    ("cut weights", lambda f: ["--backbone", str(f["cut.pth"])], "damaged or truncated zip"),
    ("weights folder", lambda f: ["--backbone", str(f["file"].parent) + "/x.pth"], "no such"),
    ("outputs under a file", lambda f: ["--out", str(f["file"] / "out")], "a file, not a folder"),
]


@pytest.mark.parametrize(("make_args", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_starts_nothing(
    tmp_path: Path, capsys, make_args: Callable[[dict[str, Path]], list[str]], needle: str
) -> None:
    files = make_bad_files(tmp_path / "files")
    out = tmp_path / "out"
    args = ["run", *TINY, "--out", str(out), *make_args(files)]
    if "--preset" in args:  # a preset's own values, not TINY's, are under test
        args = ["run", "--out", str(out), *args[args.index("--preset") :]]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], err
    assert not out.exists() or not any(out.iterdir()), "nothing is started for bad input"


def test_a_message_holding_markup_is_printed_not_parsed(tmp_path: Path, capsys) -> None:
    assert main(["run", *TINY, *set_image(tmp_path / "[/x].jpg"), "--out", str(tmp_path)]) == 2
    assert "[/x].jpg': no such file" in capsys.readouterr().err


def test_a_loss_that_overflows_at_once_exits_1_and_is_recorded(tmp_path: Path, capsys) -> None:
    huge = ["--set", "beta=1e30", "--set", "style_weights=[1e30, 1e30, 1e30, 1e30, 1e30]"]
    assert main(["run", *TINY, *huge, "--json", "--out", str(tmp_path)]) == 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "failed"
    assert summary["reason"].startswith("the loss is not finite at the first iteration")
    assert "overflow float32" in summary["reason"]
    assert summary["frames"] == 0  # it broke before the first frame: a record, no GIF
    assert {p.name for p in Path(summary["folder"]).iterdir()} == set(FILES) - {"animation.gif"}


# ---- two processes, one outputs folder -------------------------------------------------------


def test_two_processes_writing_one_outputs_folder_never_collide(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "nst_tui", "run", *TINY, "--out", str(tmp_path), "--json"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = [Path(json.loads(out.strip().splitlines()[-1])["folder"]) for out, _ in outs]
    assert folders[0] != folders[1]
    assert sorted(tmp_path.iterdir()) == sorted(folders)
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
        assert json.loads((folder / "run.json").read_text())["status"] == "finished"


# ---- signals, headless --------------------------------------------------------------------------


def wait_for_frames(out: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the run has saved a frame (so there is something to keep)."""
    deadline = time.monotonic() + timeout
    while not list(out.glob("*/.frames/*.png")):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no frame in time"
        time.sleep(0.05)


def the_record(out: Path) -> dict:
    (folder,) = out.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    info = json.loads((folder / "run.json").read_text())
    with Image.open(folder / "animation.gif") as gif:
        assert gif.n_frames == info["frames"] >= 1
    return info


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, signal.SIGHUP],
    ids=lambda s: s.name,  # Ctrl-C: the same path
)
def test_a_signal_during_a_headless_run_keeps_the_run(tmp_path: Path, sig: signal.Signals) -> None:
    preset = tmp_path / "long.toml"
    preset.write_text(LONG_PRESET)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nst_tui", "run", "--preset", str(preset), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_frames(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"{sig.name}: stopping; saving the run so far" in stderr
    assert "Traceback" not in stderr
    info = the_record(out)
    assert info["status"] == "cancelled" and info["reason"].startswith("cancelled at iteration")
    assert stdout.strip() == str(next(out.iterdir()))


def test_an_ssh_session_dropping_under_a_headless_run_keeps_the_run(tmp_path: Path) -> None:
    # The terminal goes (our ends of its pipes close) and SIGHUP arrives: every
    # write to the terminal now fails, and the record must still be written.
    preset = tmp_path / "long.toml"
    preset.write_text(LONG_PRESET)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nst_tui", "run", "--preset", str(preset), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_frames(out, proc)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    proc.send_signal(signal.SIGHUP)
    # Rich's console ended a broken pipe with SystemExit(1), and the answer on stdout
    # failed too: exit 1 where the run was cancelled and kept.
    assert proc.wait(timeout=60) == 130
    info = the_record(out)
    assert info["status"] == "cancelled"


# ---- signals, the dashboard in a real terminal ---------------------------------------------------


@contextlib.contextmanager
def dashboard_in_a_terminal(folder: Path) -> Iterator[tuple[subprocess.Popen, int, Callable]]:
    """`nst-tui --preset long.toml --run` in its own session, on a pseudo-terminal that
    is its controlling terminal (closing our end hangs it up, as sshd does)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    start = (
        "import fcntl, runpy, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "sys.argv = ['nst-tui', '--preset', 'long.toml', '--run']; "
        "runpy.run_module('nst_tui', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", start],
        cwd=folder,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"},
    )
    os.close(slave)
    stop = threading.Event()

    def drain() -> None:  # a terminal that nobody reads blocks the app's writes
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    os.read(master, 1 << 16)
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    closed = False

    def hang_up() -> None:
        nonlocal closed
        stop.set()
        reader.join()
        os.close(master)
        closed = True

    try:
        yield proc, master, hang_up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not closed:
            hang_up()


@pytest.mark.parametrize("how", ["SIGTERM", "hang-up"])
def test_the_dashboard_saves_the_run_on_sigterm_or_a_hang_up(tmp_path: Path, how: str) -> None:
    (tmp_path / "long.toml").write_text(LONG_PRESET)
    out = tmp_path / "outputs"
    with dashboard_in_a_terminal(tmp_path) as (proc, _, hang_up):
        wait_for_frames(out, proc)
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
            code = 128 + signal.SIGTERM
        else:
            hang_up()  # the kernel sends SIGHUP, and the terminal is gone for good
            code = 128 + signal.SIGHUP
        proc.wait(timeout=60)
        assert proc.returncode == code
    info = the_record(out)
    assert info["status"] == "cancelled" and info["reason"].startswith("cancelled at iteration")
