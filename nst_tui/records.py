"""Run folders on disk: one new folder per run, every file written then renamed.

A recorder is just another listener of the engine's events, so a headless run
and a dashboard run write identical folders:

    final.png       the last canvas at full size
    animation.gif   every saved frame, at the config's fps
    config.toml     a preset that reproduces the run
    losses.csv      one row per logged iteration: total, content, style, tv, per layer
    run.json        status, reason, device, backbone, iterations, timing, final losses

Frames wait in a hidden `.frames/` folder as PNGs (memory stays flat for long,
large runs) and are removed once run.json is written. One writer thread per recorder
encodes and writes them, in order, so the optimizer's thread (which calls every
listener) never waits on PNG encoding; finishing waits for it. A final name only ever
holds a whole file: a full disk or a kill leaves the old file or none, never half.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import json
import os
import platform
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import GifImagePlugin, Image

from nst_tui import __version__
from nst_tui.config import Config
from nst_tui.engine.events import Event, Finished, Frame, Placed, Progress
from nst_tui.errors import RunError
from nst_tui.text import safe_label

# run.json's status while a sweep's cell waits for its turn (and after a kill, for good).
NOT_RUN_STATUS = "not run"
FILES = ("final.png", "animation.gif", "config.toml", "losses.csv", "run.json")
# Frames waiting for the writer thread; past this the optimizer waits for the disk,
# so memory stays flat when the disk is slower than the loop.
FRAME_BACKLOG = 64


def check_outputs(root: Path) -> None:
    """Fail early, before any work, when `root` cannot hold run folders."""
    probe = root
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            where = "is a file" if probe == root else f"sits under {probe}, a file"
            raise RunError(f"outputs folder {root}: {where}, not a folder")
    except OSError as exc:
        raise RunError(f"outputs folder {root}: cannot use it ({exc.strerror or exc})") from None
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"outputs folder {root}: not writable ({probe} is read-only for you)")


def new_run_folder(root: Path, label: str) -> Path:
    """Create a fresh folder; mkdir is atomic, so concurrent processes never share one."""
    check_outputs(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"outputs folder {root}: cannot create it ({exc.strerror})") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{safe_label(label)}"
    for n in range(1, 10_000):
        folder = root / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunError(f"outputs folder {root}: cannot write there ({exc.strerror})") from None
    raise RunError(f"outputs folder {root}: no free name for {base}")


def rate(per_s: float) -> float:
    """A rate as the records keep it: four significant figures. Decimal places would
    flatten a tiled 4096 px run's 0.00157 it/s to 0.002 (an iteration of 500 s, not 638)."""
    return float(f"{per_s:.4g}")


def write_atomic(
    path: Path, data: bytes | Callable[[io.BufferedWriter], None], durable: bool = True
) -> None:
    """Write beside the target and rename, so the final name only ever holds a whole file.

    `durable` flushes the data to the disk before the rename, so that even a power
    cut leaves the old file or the new one; scratch files skip it.
    """
    # Process and thread in the name: two writers of one path never share a scratch file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunError(f"could not write {path}: {exc.strerror or exc}") from None
        raise


class Hurried(Exception):
    """A second signal came while the GIF was being encoded: it is left unwritten."""


HURRIED = (
    "animation.gif skipped: a second signal asked to finish sooner; the {n} frames are in frames/"
)
HURRIED_MID_GIF = (
    "animation.gif not finished: a second signal came while it was written; the frames "
    "are in frames/"
)


def gif_duration_ms(fps: int) -> int:
    # GIF stores delays in hundredths of a second: 30 fps becomes 30 ms (33.3 fps).
    return max(10, round(100 / fps) * 10)


def write_gif(
    path: Path, frames: Iterator[Image.Image], fps: int, hurry: threading.Event | None = None
) -> int:
    """Write the frames (quantised to a palette each) as a looping GIF; returns the count.
    `hurry` set while it encodes: raises Hurried, writing nothing.

    Every frame is kept, each with its own delay: Pillow's save_all merges a frame equal
    to the one before into it (whatever `optimize` says), so a run whose canvas stood
    still would hold fewer frames than run.json counts. The file is assembled here from
    Pillow's GIF pieces instead: the header (looping), then each frame whole, with its
    own colour table. Frames are quantised and written one at a time: a long run's GIF
    never holds more than one frame in memory (frames are at most FRAME_EDGE px)."""
    delay = gif_duration_ms(fps)
    count = 0
    first = next(frames, None)
    if first is None:
        return 0

    def save(fh: io.BufferedWriter) -> None:
        nonlocal count
        for frame in itertools.chain([first], frames):
            if hurry is not None and hurry.is_set():
                raise Hurried
            item = frame.quantize(256, method=Image.Quantize.MEDIANCUT)
            if not count:
                info = {"loop": 0, "duration": delay}
                header, _ = GifImagePlugin.getheader(item.copy(), info=info)
                for part in header:
                    fh.write(part)
            params = {"duration": delay, "disposal": 1, "include_color_table": True}
            for part in GifImagePlugin.getdata(item, (0, 0), **params):
                fh.write(part)
            count += 1
        fh.write(b";")

    write_atomic(path, save)
    return count


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class RunRecorder:
    """Listens to one run's events and keeps its folder on disk."""

    def __init__(
        self,
        cfg: Config,
        label: str,
        folder: Path,  # a new, empty folder (new_run_folder, or a sweep's cell)
        info: dict[str, Any] | None = None,
        hurry: threading.Event | None = None,  # set: finish without the GIF (a 2nd signal)
        waiting: bool = False,  # a sweep's cell: "not run" until begin() (its batch starts)
    ) -> None:
        self.cfg = cfg
        self.began = not waiting
        self.hurry = hurry or threading.Event()
        self.label = label
        self.info = dict(info or {})  # device, backbone, ... for run.json (Placed adds)
        self.folder = folder
        self.frames_dir = self.folder / ".frames"
        self.rows: list[dict[str, float]] = []
        self.frames_written = 0  # frames on disk (the writer's count)
        self.started = datetime.now().astimezone()
        self.result: Finished | None = None
        self._backlog: queue.Queue[Frame | None] = queue.Queue(FRAME_BACKLOG)
        self._writer: threading.Thread | None = None  # started by the first frame
        self._write_error: BaseException | None = None  # the writer's first; it then stops
        self._write_error_raised = False
        self._losses: io.TextIOWrapper | None = None  # losses.csv, growing as rows come
        self._columns: list[str] = []
        # The config goes first: even a killed run can be reproduced. Then a run.json that
        # says running: a run killed (or a power cut) is visibly interrupted.
        description = f"Reproduces run {self.folder.name}" + (f" ({label})" if label else "")
        try:
            self.frames_dir.mkdir()
            write_atomic(self.folder / "config.toml", cfg.to_toml(description).encode())
            self._write_record(self._running() if self.began else self._waiting(), durable=False)
        except (OSError, RunError) as exc:
            if isinstance(exc, RunError):
                raise
            raise RunError(f"could not write in {self.folder}: {exc.strerror or exc}") from None

    def begin(self) -> None:
        """The cell's batch has started: its record says running from now on."""
        if not self.began:
            self.began = True
            self._write_record(self._running(), durable=False)

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Finished):  # the end records a failed write itself
            self._raise_write_error()  # before this event: the run stops where a frame failed
            self.begin()
        if isinstance(event, Placed):
            self.info.update(event.info)
            self._write_record(self._running(), durable=False)
        elif isinstance(event, Progress) and event.logged:
            row = {"iteration": event.iteration, "elapsed_s": event.elapsed, **event.losses}
            self.rows.append(row)
            self._append_loss_row(row)
        elif isinstance(event, Frame):
            self._queue_frame(event)
        elif isinstance(event, Finished):
            self.finish(event)

    def _queue_frame(self, frame: Frame) -> None:
        if self._writer is None:
            # A daemon: it never holds the exit. Every run ends with a Finished (the job's
            # lifecycle sees to it), whose finish() ends this thread.
            self._writer = threading.Thread(
                target=self._write_frames, name=f"frames-{self.folder.name}", daemon=True
            )
            self._writer.start()
        self._backlog.put(frame)  # blocks while the writer is FRAME_BACKLOG frames behind

    def _write_frames(self) -> None:
        """The writer thread: every queued frame, in order, until the None that ends it."""
        while (frame := self._backlog.get()) is not None:
            if self._write_error is not None:
                continue  # as when the write failed in the loop: no frame after the failed one
            name = self.frames_dir / f"{frame.iteration:09d}.png"
            try:
                write_atomic(name, png_bytes(frame.image), durable=False)
                self.frames_written += 1
            except BaseException as exc:  # raised in the caller's thread; this one must drain
                self._write_error = exc

    def _drain_frames(self) -> None:
        """Wait until every queued frame is written and the writer thread has ended."""
        if self._writer is not None:
            self._backlog.put(None)
            self._writer.join()
            self._writer = None
        self._raise_write_error()

    def _raise_write_error(self) -> None:
        """The writer's first error, raised once, as the frame's write itself raised before
        it moved to the writer: the run's lifecycle then still records it, failed."""
        if self._write_error is not None and not self._write_error_raised:
            self._write_error_raised = True
            raise self._write_error

    def _frames(self) -> Iterator[Image.Image]:
        """The saved frames, each at the last frame's size (a multi-scale run's first
        frames are smaller)."""
        paths = sorted(self.frames_dir.glob("*.png"))
        if not paths:
            return
        with Image.open(paths[-1]) as last:
            size = last.size
        for path in paths:
            with Image.open(path) as im:
                frame = im.convert("RGB")
            yield frame if frame.size == size else frame.resize(size, Image.Resampling.LANCZOS)

    def finish(self, result: Finished) -> Path:
        """Write the record: final.png, losses.csv and run.json, then the GIF (unless told
        to hurry: the frames then stay in frames/ and run.json says so).

        A write that fails (a full disk) frees the scratch frames first, then records the
        run as failed with the reason; only if even that cannot be written does it raise.
        """
        try:
            self._finish(result)
        except RunError as exc:
            shutil.rmtree(self.frames_dir, ignore_errors=True)  # room for the record
            self._close_losses()
            if result.ran:
                with contextlib.suppress(RunError):  # with the room made, the picture may fit
                    write_atomic(self.folder / "final.png", png_bytes(result.image))
            with contextlib.suppress(RunError):
                self._write_losses()
            # A run already failed by a write (a frame) says so; else this write is why.
            reason = result.reason if result.status == "failed" and result.reason else str(exc)
            if result.ran and not (self.folder / "final.png").is_file():
                reason += "; final.png could not be written"
            failed = dataclasses.replace(result, status="failed", reason=reason)
            try:
                self._write_record(self._summary(failed, frames=0))
            except RunError:
                raise exc from None  # the first failure is the one to see
            self.result = failed
        return self.folder

    def _finish(self, result: Finished) -> None:
        self._drain_frames()  # the GIF needs every frame; a failed one fails this call
        if result.ran:  # a cell that never started has no canvas to show
            write_atomic(self.folder / "final.png", png_bytes(result.image))
        self._close_losses()
        self._write_losses()
        gif = not self.hurry.is_set()
        frames = self.frames_written
        notes = [] if gif else [HURRIED.format(n=frames)]
        self._write_record(self._summary(result, frames, notes))
        self.result = result
        if gif:
            try:
                write_gif(self.folder / "animation.gif", self._frames(), self.cfg.fps, self.hurry)
            except Hurried:
                self._write_record(self._summary(result, frames, [HURRIED_MID_GIF]))
                gif = False
        if gif:
            shutil.rmtree(self.frames_dir, ignore_errors=True)
        elif self.frames_dir.exists():
            self.frames_dir.rename(self.folder / "frames")  # kept where a user sees them

    def _running(self) -> dict[str, Any]:
        return {
            "status": "running",
            "reason": "",
            "label": self.label,
            **self.info,
            **self._iterations(),
            "started_at": self.started.isoformat(timespec="seconds"),
            "nst_tui": __version__,
            "python": platform.python_version(),
        }

    def _iterations(self) -> dict[str, int]:
        """The run's steps, counted as iterations_done counts them: a multi-scale run's
        `iterations` are every scale's, and `iterations_per_scale` each one's."""
        out = {"iterations": self.cfg.total_iterations}
        if self.cfg.scales:
            out["iterations_per_scale"] = self.cfg.iterations
        return out

    def _waiting(self) -> dict[str, Any]:
        """A sweep's cell before its turn: what a sweep killed before it started leaves."""
        return {
            **self._running(),
            "status": NOT_RUN_STATUS,
            "reason": "not run: waiting for its turn (a sweep killed before then leaves this)",
        }

    def _summary(self, result: Finished, frames: int, notes: Sequence[str] = ()) -> dict[str, Any]:
        info = dict(self.info)
        notes = [*info.pop("notes", []), *notes]
        return {
            "status": result.status,
            "reason": result.reason,
            "label": self.label,
            **info,
            **({"notes": notes} if notes else {}),
            **self._iterations(),
            "iterations_done": result.iterations_done,
            **self._stop(result),
            "wall_time_s": round(result.wall_time, 4),
            "it_per_s": rate(result.it_per_s),
            **self._tflop_s(result),
            "frames": frames,
            "gif_frame_ms": gif_duration_ms(self.cfg.fps),
            "final_losses": result.losses,
            "started_at": self.started.isoformat(timespec="seconds"),
            "finished_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "nst_tui": __version__,
            "python": platform.python_version(),
        }

    def _stop(self, result: Finished) -> dict[str, Any]:
        """Where and why a run with the stop_change rule stopped: `stopped_by` convergence
        (the reason says at which iteration, on which windows) or the iterations cap, and
        the rule's last measure (`last_gain`: how much lower the last window's mean loss
        was than the one before's, a fraction)."""
        if not self.cfg.stop_change or result.status != "finished":
            return {}
        out: dict[str, Any] = {"stopped_by": "convergence" if result.converged else "iterations"}
        if result.gain is not None:
            out["last_gain"] = round(result.gain, 6)
        return out

    def _write_record(self, summary: dict[str, Any], durable: bool = True) -> None:
        """run.json; the provisional ones (running) skip the flush to disk."""
        data = (json.dumps(summary, indent=2) + "\n").encode()
        write_atomic(self.folder / "run.json", data, durable)

    def _append_loss_row(self, row: dict[str, float]) -> None:
        """losses.csv as the rows come (not synced: a killed run keeps what the system
        wrote); finish() rewrites it whole. A failed append only costs the live copy."""
        try:
            if self._losses is None:
                self._columns = list(row)
                self._losses = open(self.folder / "losses.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
                csv.writer(self._losses).writerow(self._columns)
            csv.writer(self._losses).writerow(
                [_fmt(row[k]) if k in row else "" for k in self._columns]
            )
            self._losses.flush()
        except OSError:
            self._close_losses()

    def _close_losses(self) -> None:
        if self._losses is not None:
            with contextlib.suppress(OSError):
                self._losses.close()
            self._losses = None

    def _tflop_s(self, result: Finished) -> dict[str, float]:
        """Achieved TFLOP/s: the counted work of an iteration (run info) times it/s."""
        gflop = self.info.get("gflop_per_iteration")
        if gflop is None:
            return {}
        return {"tflop_s": round(gflop * result.it_per_s / 1e3, 6)}

    def _write_losses(self) -> None:
        columns = ["iteration", "elapsed_s"]
        for row in self.rows:
            columns += [k for k in row if k not in columns]

        def save(fh: io.BufferedWriter) -> None:
            text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
            writer = csv.DictWriter(text, fieldnames=columns)
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _fmt(v) for k, v in row.items()})
            text.flush()
            text.detach()

        write_atomic(self.folder / "losses.csv", save)


def _fmt(v: float | int) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def interruption(folder: Path) -> str:
    """Why `folder` is a run that never ended, or "" when it is not one: its run.json
    still says running (killed, or a power cut) or not run (a sweep's cell whose turn never
    came), or it has a config.toml and no run.json (killed before its record began)."""
    record = folder / "run.json"
    if record.is_file():
        try:
            status = json.loads(record.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError, AttributeError):
            return ""
        if status == NOT_RUN_STATUS:
            return "its run.json says not run: the sweep was killed before this cell started"
        if status == "running":
            return "its run.json still says running: killed before it finished"
        return ""
    if (folder / "config.toml").is_file() and not (folder / "sweep.toml").is_file():
        return "no run.json: killed before its record began"
    return ""


def read_run(folder: Path) -> dict[str, Any]:
    """run.json of a finished folder."""
    info: dict[str, Any] = json.loads((folder / "run.json").read_text())
    return info
