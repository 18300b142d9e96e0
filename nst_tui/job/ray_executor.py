"""The Ray executor: each batch of cells runs as one Ray task on a cluster's worker.

What crosses the network:
    driver -> worker   the batch's cells (their Configs) and the bytes of every image
                       they name (no shared filesystem: the worker writes them to a
                       temporary folder and points the configs at it); `builtin:`
                       images resolve inside the package on the worker
    worker -> driver   the events `run_batch` emits (Status, Placed, Progress, Frame,
                       Finished: host-side values, frames as uint8 arrays), pushed to a
                       hub actor every FLUSH_S while the cells run; the driver drains
                       it and hands them to its recorders and listeners, which write the
                       folders exactly as for a local run
    driver -> worker   a cancel: a flag on the hub, read by each worker at its next push

Each task claims one GPU (`num_gpus=1`), or on a CPU-only cluster a share of its CPUs,
and runs `run_batch`, the same cell lifecycle as a local run. A worker that dies ends
its cells that had not finished as failed, naming the death; the other batches go on.
Ray is imported here only: the engine and the local path never need it.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray

from nst_tui.config import INITS, RUN_INIT, Config
from nst_tui.engine.events import Finished, StatusFn
from nst_tui.engine.images import BUILTIN_PREFIX
from nst_tui.errors import NSTError
from nst_tui.job import ray_local
from nst_tui.job.events import BatchStarted, CellEvent, JobEvent, Listener, not_run
from nst_tui.job.plan import Batch, Cell, Job

FLUSH_S = 0.1  # how often a worker pushes its events (and reads the cancel flag)
CANCEL_GRACE_S = 15.0  # after a cancel, how long a worker may take to stop before it is killed

Images = dict[str, bytes]  # an image as a config names it -> the file's bytes


class RayExecutor:
    """Runs batches as Ray tasks, at most `workers` at once; events come back through a
    hub actor and are emitted in the calling thread, in each batch's order."""

    name = "ray"

    def __init__(self, address: str = "", workers: int | None = None) -> None:
        self.address = address  # "" starts a local Ray (unless one is already running here)
        self.max_workers = workers  # None: one per GPU (per CPU share on a CPU-only cluster)
        self.workers = 1
        self.claims: dict[int, tuple[str, int]] = {}  # batch -> (node, pid) of its worker
        self._images: Images = {}
        self._gpus = 0
        self._cpus_per_task = 1

    # ---- before any folder exists ----------------------------------------------
    def check(self, job: Job, status: StatusFn) -> None:
        from nst_tui.engine.prepare import load_all_inputs  # torch: only once a job runs
        from nst_tui.engine.scales import scale_configs

        if self.address and not ray.is_initialized():
            probe(self.address)  # a wrong address: in seconds, before torch loads
        # The images are read here and shipped: they must open here (on the CPU: this
        # machine may have no GPU while the cluster does).
        load_all_inputs([scale_configs(c.config)[0].replace(device="cpu") for c in job.cells])
        self._images = read_images(c.config for c in job.cells)
        connect(self.address, status)
        self._size_workers(job)

    def _size_workers(self, job: Job) -> None:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = sum(int(n["Resources"].get("GPU", 0)) for n in nodes)
        cpus = sum(int(n["Resources"].get("CPU", 0)) for n in nodes)
        biggest = max((int(n["Resources"].get("CPU", 0)) for n in nodes), default=1)
        wants_gpu = any(c.config.device != "cpu" for c in job.cells)
        self._gpus = gpus if wants_gpu else 0
        slots = self._gpus or max(1, cpus)
        self.workers = max(1, min(self.max_workers or slots, slots))
        # A CPU task gets an equal share of the cluster's CPUs, no more than a node holds.
        self._cpus_per_task = max(1, min(cpus // self.workers, biggest))

    def _options(self, batch_cells: Sequence[Cell]) -> dict[str, Any]:
        if self._gpus and batch_cells[0].config.device != "cpu":
            return {"num_gpus": 1, "num_cpus": 1}
        return {"num_cpus": self._cpus_per_task}

    # ---- the run ------------------------------------------------------------------
    def run(
        self, job: Job, batches: Sequence[Batch], emit: Listener, cancel: threading.Event
    ) -> None:
        self.claims = {}
        # @ray.remote's type is a function's for a class: its actor's .options is not in it.
        hub = _Hub.options(num_cpus=0).remote()  # type: ignore[attr-defined]
        images = ray.put(self._images)  # once: every task reads the same object
        track = _Track(job, batches, emit)
        waiting = list(enumerate(batches))  # not handed to Ray yet
        running: dict[Any, int] = {}  # task -> batch
        cancel_sent: float | None = None  # when the hub was told
        try:
            while waiting or running:
                if cancel.is_set() and cancel_sent is None:
                    cancel_sent = time.monotonic()
                    claimed = ray.get(hub.cancel.remote())
                    for ref, b in list(running.items()):
                        if b not in claimed:  # queued in Ray, not started: it never will
                            ray.cancel(ref)
                            del running[ref]
                            track.end_batch(b, "cancelled", "cancelled before it started")
                    for b, _ in waiting:  # never handed to Ray
                        track.end_batch(b, "cancelled", "cancelled before it started")
                    waiting.clear()
                while waiting and len(running) < self.workers:
                    b, batch = waiting.pop(0)
                    cells = [job.cells[i] for i in batch.cells]
                    threads = 0 if "num_gpus" in self._options(cells) else self._cpus_per_task
                    task = _work.options(**self._options(cells))
                    running[task.remote(b, batch, cells, images, hub, threads)] = b
                if not running:
                    continue
                done, _ = ray.wait(list(running), num_returns=len(running), timeout=FLUSH_S)
                self._drain(hub, track)
                for ref in done:
                    b = running.pop(ref)
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        status = "cancelled" if cancel.is_set() else "failed"
                        track.end_batch(b, status, died(exc, self.claims.get(b)))
                if cancel_sent is not None and time.monotonic() - cancel_sent > CANCEL_GRACE_S:
                    for ref in running:  # still busy (loading, a long step): stopped by force
                        ray.cancel(ref, force=True)
                    cancel_sent = float("inf")
        except BaseException:
            for ref in running:  # a second Ctrl-C, a bug, a record that cannot be written
                ray.cancel(ref, force=True)
            raise
        finally:
            with contextlib.suppress(Exception):
                ray.kill(hub)

    def _drain(self, hub: Any, track: _Track) -> None:
        events, claims = ray.get(hub.drain.remote())
        self.claims.update(claims)
        for event in events:
            track(event)


def connect(address: str, status: StatusFn) -> None:
    """Join the cluster at `address`, or start a local Ray of this process's own for "";
    a Ray this process already joined (a test's, the dashboard's previous job) is used as
    it is. An address that does not answer fails in PROBE_S with one line; a signal while
    Ray starts acts at once (KeyboardInterrupt, after the caller's handler ran)."""
    global _local
    if ray.is_initialized():
        return
    if _pending is not None and _pending.is_alive():
        raise NSTError("executor ray: still waiting on an earlier Ray start; try again shortly")
    if address:
        probe(address)
        status(f"connecting to Ray at {address}", None)
        _use_the_token_if_any()
        kwargs: dict[str, Any] = {"address": address}
        limit, where = JOIN_S, f"at {address}"
    else:
        status("starting a local Ray", None)
        if _local is None:
            _local = ray_local.LocalRay()
            atexit.register(_shut_down_local)
        folder = str(_local.folder)
        kwargs = {
            "address": "local",  # a new one, whatever RAY_ADDRESS or `ray start` left
            "_temp_dir": folder,  # its sessions and logs, removed when nst-tui ends
            "include_dashboard": False,
            # A Ray started here runs its workers at this process's priority, not Ray's
            # nice 15: a CPU worker's threads starve behind any other load.
            "_system_config": {"worker_niceness": 0},
            # The batches' image folders inside it too (tempfile in the workers).
            "runtime_env": {"env_vars": {"TMPDIR": folder}},
        }
        limit, where = START_S, "here"
    # Ray's core worker installs a SIGTERM handler that aborts the process: the caller's
    # (the CLI's: cancel, record every cell, exit 130) are put back.
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in _SIGNALS} if main else {}
    try:
        _init_within(kwargs, limit, where, handlers)
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
    if _local is not None and not address:
        _local.note()


PROBE_S = 3.0  # how long an address may take to accept a connection and answer HTTP/2
JOIN_S = 30.0  # how long joining a cluster that answered may take
START_S = 180.0  # how long starting a local Ray may take (a busy machine's few cores)
_local: ray_local.LocalRay | None = None  # the local Ray this process started
_pending: threading.Thread | None = None  # a ray.init given up on, still running
_forever = threading.Event()  # never set (but by tests): what a Ray's init thread waits on
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def split_address(address: str) -> tuple[str, int]:
    """HOST and PORT of `HOST:PORT`, `ray://HOST:PORT` or `[IPv6]:PORT`."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NSTError(f"executor ray: {address!r} is not HOST:PORT with a port from 1 to 65535")
    return host, int(port)


def probe(address: str) -> None:
    """Raise NSTError (one line, within PROBE_S) unless something at `address` takes a
    TCP connection and answers HTTP/2's hello as a gRPC server (Ray's GCS, or with ray://
    its client server) does; `auto` is the cluster this machine last joined."""
    shown = address
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise NSTError(
            "executor ray: a ray:// address needs Ray's client, which is not installed here: "
            "pip install 'nst-tui[ray]' (or 'ray[client]')"
        )
    if address == "auto":
        from ray._private import services

        try:
            found = services.canonicalize_bootstrap_address(address)
        except Exception as exc:  # ConnectionError: none found
            raise NSTError(f"executor ray: no Ray cluster to join here ({_first(exc)})") from None
        if not found:
            raise NSTError("executor ray: no Ray cluster to join here (ray start --head?)")
        address, shown = found, f"auto ({found})"
    host, port = split_address(address)
    hint = (
        "the client server's port (ray start --ray-client-server-port, 10001)"
        if address.startswith("ray://")
        else "the head's port (ray start --head --port, 6379)"
    )
    try:
        sock = socket.create_connection((host, port), timeout=PROBE_S)
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or _first(exc)
        raise NSTError(
            f"executor ray: cannot reach Ray at {shown}: {why}; is {hint} right?"
        ) from None
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return  # TLS first: no plain hello to check
        try:
            sock.sendall(_H2_HELLO)
            answer = sock.recv(9)
        except OSError:
            answer = b""
    if len(answer) < 4 or answer[3] != 0x04:  # an HTTP/2 server answers with its SETTINGS
        raise NSTError(
            f"executor ray: {shown} answers, but not as Ray (no gRPC there); is {hint} right?"
        )


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _use_the_token_if_any() -> None:
    """Send this machine's Ray token (~/.ray/auth_token) when RAY_AUTH_MODE is unset, as
    `ray start` does: a cluster started where a token exists asks for it, and without it
    joining fails after 20 s (ray://: times out after 30 s)."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    with contextlib.suppress(Exception):  # a Ray without token authentication
        from ray._private.authentication import authentication_token_setup as auth

        quiet = logging.getLogger(auth.__name__)
        level, quiet.level = quiet.level, logging.ERROR
        try:
            auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
        finally:
            quiet.setLevel(level)


def _init_within(
    kwargs: dict[str, Any], limit: float, where: str, handlers: dict[Any, Any]
) -> None:
    """ray.init in a thread of its own (kept), waited on here: a signal acts at once (the
    caller's handler runs, then KeyboardInterrupt), a Ray that never answers is given up
    on after `limit` s. Ray's own lines (C++ warnings) go to a log, not the terminal."""
    global _pending
    outcome: list[BaseException | None] = []

    def init() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ray://'s UserWarning: we say why ourselves
                ray.init(logging_level=logging.ERROR, log_to_driver=False, **kwargs)
            outcome.append(None)
        except BaseException as exc:  # SystemExit too: Ray's own SIGTERM handler
            outcome.append(exc)
            return
        # The processes a local Ray starts die with the thread that started them (Linux's
        # parent-death signal follows the thread): this one lives as long as the process.
        _forever.wait()

    got: list[int] = []

    def heard(signum: int, frame: Any) -> None:
        got.append(signum)
        handler = handlers.get(signum)
        if callable(handler):
            handler(signum, frame)

    for sig, handler in handlers.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(sig, heard)
    thread = threading.Thread(target=init, name="nst-tui-ray-init", daemon=True)
    deadline = time.monotonic() + limit
    with _real_std_streams(), _ray_lines_to_a_log():
        thread.start()
        while not outcome and not got and time.monotonic() < deadline:
            thread.join(0.1)
    if got:
        _pending = thread if thread.is_alive() else None
        raise KeyboardInterrupt
    if not outcome:
        _pending = thread
        raise NSTError(f"executor ray: Ray {where} did not answer within {limit:.0f} s")
    exc = outcome[0]
    if exc is not None:
        raise NSTError(f"executor ray: cannot start or reach Ray {where}: {_first(exc)}")


@contextlib.contextmanager
def _ray_lines_to_a_log() -> Iterator[None]:
    """File descriptor 2 to a log file while Ray starts (its C++ parts write there), with
    sys.stderr still the terminal; not in the dashboard, whose screen is descriptor 2."""
    try:
        fd = sys.stderr.fileno()  # Textual's capture answers -1
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd < 0:
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    log = tempfile.TemporaryFile(prefix="nst-tui-ray-init-")  # noqa: SIM115 - closed below
    os.dup2(log.fileno(), 2)
    stream = sys.stderr
    if fd == 2:  # Python's own lines (the progress bar) still reach the terminal
        sys.stderr = open(terminal, "w", closefd=False)  # noqa: SIM115 - closed below
    try:
        yield
    finally:
        if sys.stderr is not stream:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.close()
            sys.stderr = stream
        os.dup2(terminal, 2)
        os.close(terminal)
        log.close()


def _shut_down_local() -> None:
    """At exit: Ray down, then what is left of the local Ray stopped and its folder gone."""
    if _local is None:
        return
    if _pending is None or not _pending.is_alive():  # a start still under way: no shutdown
        with contextlib.suppress(Exception):
            ray.shutdown()
    _local.close()


@contextlib.contextmanager
def _real_std_streams() -> Iterator[None]:
    """sys.stdout/stderr with file descriptors while Ray starts, which asks for them: the
    dashboard's (Textual captures prints) have none, so Ray gets the null device there
    (the terminal belongs to the dashboard)."""
    swapped: dict[str, Any] = {}
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            usable = stream.fileno() >= 0  # Textual's capture answers -1
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            usable = False
        if not usable:
            swapped[name] = stream
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - closed below
    try:
        yield
    finally:
        for name, stream in swapped.items():
            getattr(sys, name).close()
            setattr(sys, name, stream)


_SIGNALS = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


def died(exc: BaseException, claim: tuple[str, int] | None) -> str:
    """Why a batch's unfinished cells ended: its worker's death, or its task's error."""
    who = f"the Ray worker (pid {claim[1]} on {claim[0]})" if claim else "its Ray worker"
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return f"{who} was stopped"
    if isinstance(exc, ray.exceptions.RayTaskError):  # an error the cells already recorded
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"{who} raised {type(cause).__name__}: {cause}"
    text = str(exc).strip().splitlines()
    return f"{who} died ({type(exc).__name__}: {text[0] if text else 'no reason given'})"


class _Track:
    """What the driver has heard of each cell, to end those a dead worker left open."""

    def __init__(self, job: Job, batches: Sequence[Batch], emit: Listener) -> None:
        self.batches, self.emit = batches, emit
        self.started: dict[int, float] = {}  # batch -> when its BatchStarted arrived
        self.iteration = [0] * len(job.cells)
        self.losses: list[dict[str, float]] = [{} for _ in job.cells]
        self.frame: list[np.ndarray | None] = [None] * len(job.cells)
        self.ended = [False] * len(job.cells)

    def __call__(self, event: JobEvent) -> None:
        from nst_tui.engine.events import Frame, Progress

        if isinstance(event, BatchStarted):
            self.started[event.batch] = time.monotonic()
        elif isinstance(event, CellEvent):
            ev, i = event.event, event.cell
            if isinstance(ev, Progress):
                self.iteration[i], self.losses[i] = ev.iteration, ev.losses
            elif isinstance(ev, Frame):
                self.frame[i] = ev.image
            elif isinstance(ev, Finished):
                self.ended[i] = True
        self.emit(event)

    def end_batch(self, b: int, status: str, reason: str) -> None:
        """A Finished for each cell of batch `b` that has none, at its last report; a batch
        that never started (no BatchStarted came) ends its cells as not run."""
        if b not in self.started:
            for i in self.batches[b].cells:
                if not self.ended[i]:
                    self(CellEvent(i, not_run(status, reason)))
            return
        wall = time.monotonic() - self.started[b]
        for i in self.batches[b].cells:
            if self.ended[i]:
                continue
            frame = self.frame[i]
            image = frame if frame is not None else np.zeros((1, 1, 3), np.uint8)
            at = self.iteration[i]
            self(CellEvent(i, Finished(status, reason, at, wall, at / max(wall, 1e-9),
                                       self.losses[i], image)))  # fmt: skip


# ---- images: read on the driver, written on the worker ---------------------------


def image_specs(cfg: Config) -> list[str]:
    """The image files a config names (builtin: images ship inside the package)."""
    specs = [cfg.content_image, cfg.style_image, *cfg.style_images]
    if cfg.init not in INITS:
        specs.append(cfg.init)
    return [s for s in specs if not s.startswith(BUILTIN_PREFIX)]


def read_images(cfgs: Any) -> Images:
    """The bytes of every distinct file the configs name (`run:FOLDER`: its final.png)."""
    from nst_tui.engine.images import resolve_path
    from nst_tui.engine.prepare import run_final

    out: Images = {}
    for cfg in cfgs:
        for spec in image_specs(cfg):
            if spec not in out:
                path = run_final(spec[len(RUN_INIT) :]) if spec.startswith(RUN_INIT) else None
                out[spec] = (path or resolve_path(spec)).read_bytes()
    return out


def localize(cells: Sequence[Cell], images: Images, folder: Path) -> list[Cell]:
    """The cells with their images written under `folder` and their configs pointing there
    (device cuda:N -> cuda: Ray hands the task its GPU as the only one it sees)."""
    paths: dict[str, str] = {}
    for k, (spec, data) in enumerate(images.items()):
        name = Path(spec[len(RUN_INIT) :]).name + ".png" if spec.startswith(RUN_INIT) else None
        path = folder / str(k) / (name or Path(spec).name or "image")
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        paths[spec] = str(path)

    def local(cfg: Config) -> Config:
        changes: dict[str, Any] = {
            "content_image": paths.get(cfg.content_image, cfg.content_image),
            "style_image": paths.get(cfg.style_image, cfg.style_image),
            "style_images": [paths.get(s, s) for s in cfg.style_images],
            "init": paths.get(cfg.init, cfg.init),
        }
        if cfg.device.startswith("cuda:"):
            changes["device"] = "cuda"
        return cfg.replace(**changes)

    return [replace(c, config=local(c.config)) for c in cells]


# ---- on the cluster ---------------------------------------------------------------


@ray.remote(num_cpus=0)
class _Hub:
    """Where workers leave their events and read the cancel flag; the driver drains it."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.claims: dict[int, tuple[str, int]] = {}
        self.cancelled = False

    def claim(self, batch: int, node: str, pid: int) -> bool:
        """A worker starts batch `batch`; False once cancelled (the driver ends it instead)."""
        if self.cancelled:
            return False
        self.claims[batch] = (node, pid)
        return True

    def push(self, events: list[JobEvent]) -> bool:
        self.events.extend(events)
        return self.cancelled

    def drain(self) -> tuple[list[JobEvent], dict[int, tuple[str, int]]]:
        events, self.events = self.events, []
        return events, dict(self.claims)

    def cancel(self) -> set[int]:
        """Raise the flag; the batches already claimed (their workers will see it)."""
        self.cancelled = True
        return set(self.claims)


class _Outbox:
    """A worker's events, pushed to the hub every FLUSH_S by a thread that also reads the
    cancel flag: the loop itself never waits on the network."""

    def __init__(self, hub: Any, cancel: threading.Event) -> None:
        self.hub, self.cancel = hub, cancel
        self.events: list[JobEvent] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="nst-tui-outbox", daemon=True)

    def put(self, event: JobEvent) -> None:
        with self.lock:
            self.events.append(event)

    def flush(self) -> None:
        with self.lock:
            events, self.events = self.events, []
        if ray.get(self.hub.push.remote(events)):
            self.cancel.set()

    def _loop(self) -> None:
        while not self.stop.wait(FLUSH_S):
            self.flush()

    def __enter__(self) -> _Outbox:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.flush()  # the last events (every Finished) are at the hub before the task ends


@ray.remote(max_retries=0)
def _work(b: int, batch: Batch, cells: list[Cell], images: Images, hub: Any, threads: int) -> None:
    """One batch on a worker: the same lifecycle as a local run (nst_tui.job.lifecycle)."""
    from nst_tui.job.lifecycle import run_batch

    if not ray.get(hub.claim.remote(b, socket.gethostname(), os.getpid())):
        return  # cancelled before it started: the driver records its cells
    if threads:
        import torch

        torch.set_num_threads(threads)  # its CPU share (a reused worker may have had another)
    ray_local.clean_stale(tempfile.gettempdir())  # what a killed worker left on this node
    folder = Path(tempfile.mkdtemp(prefix=ray_local.PREFIX))
    ray_local.write_owner(folder)
    try:
        local = localize(cells, images, folder)
        cancel = threading.Event()
        with _Outbox(hub, cancel) as outbox:
            run_batch(b, batch, local, outbox.put, cancel)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
