"""A local Ray that nst-tui starts is nst-tui's alone, and leaves nothing behind.

Its temporary folder (Ray's `_temp_dir`: sessions, logs, sockets, and the batches'
image folders) is `/tmp/nst-tui-ray-XXXX` ($RAY_TMPDIR if set), holding an `owner` file
(the pid and start time of the nst-tui that made it) and a `pids` file (its Ray
processes: gcs_server, raylet, the dashboard and runtime-env agents, workers). However
nst-tui ends:

- a return, an exception, a signal it handles: an atexit hook shuts Ray down, stops
  what is left (an agent can outlive its raylet for minutes) and removes the folder;
- os._exit (the dashboard's last resort), a crash, SIGKILL: a reaper process, started
  with the Ray and in its own session, sees the pipe from nst-tui close, stops the
  processes it last saw and removes the folder;
- the reaper killed too: the next start (`new_folder`) cleans every such folder whose
  owner is gone.

A worker's batch folder (`_work`) carries an `owner` file too, so a worker that was
killed has its folder cleaned by the next batch on that node.

The reaper runs as `python -m nst_tui.job.ray_local FOLDER PID`: stdlib and psutil
(Ray ships one) only, no Ray import.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PREFIX = "nst-tui-ray-"
OWNER, PIDS = "owner", "pids"
YOUNG_S = 60.0  # a folder with no owner file yet may be a start under way: left alone
REAP_EVERY_S = 1.0  # how often the reaper looks at the Ray processes (and its owner)
RAY_NAMES = ("raylet", "gcs_server")


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:  # Ray ships its own copy, not importable by name before `import ray`
        import importlib.util

        spec = importlib.util.find_spec("ray")
        for where in (spec.submodule_search_locations if spec else None) or []:
            vendored = os.path.join(where, "thirdparty_files")
            if os.path.isdir(vendored) and vendored not in sys.path:
                sys.path.append(vendored)
        import psutil
    return psutil


def started(pid: int) -> float | None:
    """When process `pid` started (None: there is none): a pid and this name one process."""
    psutil = _psutil()
    try:
        return round(float(psutil.Process(pid).create_time()), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


def alive(pid: int, when: float) -> bool:
    at = started(pid)
    return at is not None and abs(at - when) < 0.05


def write_owner(folder: Path, pid: int | None = None) -> None:
    pid = os.getpid() if pid is None else pid
    _write(folder / OWNER, f"{pid} {started(pid)}\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_pairs(path: Path) -> list[tuple[int, float]]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            pid, _, when = line.partition(" ")
            with contextlib.suppress(ValueError):
                out.append((int(pid), float(when)))
    return out


def owned_by_the_living(folder: Path) -> bool:
    """Whether the nst-tui (or worker) that made `folder` still runs."""
    owner = _read_pairs(folder / OWNER)
    if not owner:  # being made right now, or a start that died before it wrote it
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime < YOUNG_S
        return False
    return alive(*owner[0])


def ray_root() -> Path:
    """Where a local Ray's folder goes: as Ray's own, $RAY_TMPDIR or /tmp, not a long
    $TMPDIR (macOS's): its socket paths must stay under 108 bytes."""
    given = os.environ.get("RAY_TMPDIR")
    return Path(given or ("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()))


def clean_stale(root: str | Path | None = None) -> list[Path]:
    """Stop the processes and remove the folders that dead nst-tuis left under `root`
    (ray_root()); the folders removed."""
    root = Path(root or ray_root())
    removed = []
    with contextlib.suppress(OSError):
        for folder in root.glob(PREFIX + "*"):
            if not folder.is_dir() or folder.is_symlink() or owned_by_the_living(folder):
                continue
            stop(_read_pairs(folder / PIDS))
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed


def new_folder() -> Path:
    """A fresh folder for a local Ray, after cleaning what dead ones left."""
    clean_stale()
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=ray_root()))
    write_owner(folder)
    return folder


def ray_processes(owner: int, folder: Path) -> list[tuple[int, float]]:
    """The Ray processes under `owner` (pid, start time): those it started for this folder
    (their command lines name it) and the raylet's agents and workers (`ray::...`)."""
    psutil = _psutil()
    try:
        children = psutil.Process(owner).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
    out = []
    for child in children:
        try:
            line = " ".join(child.cmdline())
            if str(folder) in line or line.startswith("ray::") or child.name() in RAY_NAMES:
                out.append((child.pid, round(child.create_time(), 2)))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def stop(processes: Iterable[tuple[int, float]]) -> None:
    """SIGKILL each process that is still the one recorded (a reused pid is left alone)."""
    for pid, when in processes:
        if pid != os.getpid() and alive(pid, when):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def record(folder: Path, processes: list[tuple[int, float]]) -> None:
    with contextlib.suppress(OSError):
        _write(folder / PIDS, "".join(f"{p} {w}\n" for p, w in processes))


class LocalRay:
    """The folder and reaper of a local Ray this process starts; `close` (also at exit)
    after `ray.shutdown()`: stops what is left and removes the folder."""

    def __init__(self) -> None:
        self.folder = new_folder()
        self.reaper: subprocess.Popen[bytes] | None = None
        with contextlib.suppress(OSError):
            self.reaper = subprocess.Popen(
                [sys.executable, "-m", "nst_tui.job.ray_local", str(self.folder), str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal is nst-tui's, not its
            )

    def note(self) -> None:
        """Record the Ray processes now running (for the next start, if the reaper dies)."""
        record(self.folder, ray_processes(os.getpid(), self.folder))

    def close(self) -> None:
        left = ray_processes(os.getpid(), self.folder) + _read_pairs(self.folder / PIDS)
        reaper = self.reaper.pid if self.reaper is not None else None
        stop(p for p in left if p[0] != reaper)  # the reaper ends on its own, below
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.reaper is not None:
            with contextlib.suppress(OSError):
                if self.reaper.stdin is not None:  # always: Popen(stdin=PIPE)
                    self.reaper.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.reaper.wait(2)


def reap(folder: Path, owner: int) -> None:
    """Wait for `owner` to end (its pipe on stdin closes), keeping a list of its Ray
    processes; then stop those still running and remove the folder."""
    born = started(owner)
    seen: dict[int, float] = {}
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], REAP_EVERY_S)
        if ready and not os.read(sys.stdin.fileno(), 1024):
            break  # the owner closed it (at its exit) or died
        if born is None or not alive(owner, born):
            break
        now = ray_processes(owner, folder)
        if set(now) - set(seen.items()):
            seen.update(now)
            record(folder, list(seen.items()))
    stop(list(seen.items()) + _read_pairs(folder / PIDS))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # the reaper
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reap(Path(sys.argv[1]), int(sys.argv[2]))
