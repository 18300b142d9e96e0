"""Reaching Ray (issue 24): an address that does not answer fails in seconds with one line
and exit 2, a signal while Ray starts acts at once, Ray's C++ lines stay off the terminal,
and what a dead nst-tui's local Ray left is cleaned by the next start. No Ray starts here
(a fake ray.init, sockets made in the test): fast."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY

from nst_tui.cli import main

ray = pytest.importorskip("ray")  # the extra: pip install 'nst-tui[ray]'
from nst_tui.job import ray_executor, ray_local  # noqa: E402


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def one_cell_preset(folder: Path) -> Path:
    from nst_tui.config import Config

    path = folder / "one.toml"
    path.write_text(Config.from_dict(TINY).to_toml("one cell"))
    return path


@pytest.fixture
def mute_listener():
    """A TCP port that takes connections and never answers (not Ray, not gRPC)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def http_listener():
    """A port that answers every connection as HTTP/1 does (Ray's dashboard port, say)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    server.close()


def unreachable(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "refused":
        return f"127.0.0.1:{free_port()}"
    if kind == "port out of range":
        return "127.0.0.1:99999"
    if kind == "port zero":
        return "127.0.0.1:0"
    if kind == "ipv6 refused":
        try:
            return f"[::1]:{free_port(socket.AF_INET6, '::1')}"
        except OSError:  # no IPv6 here: the address still names nothing that answers
            return "[::1]:6379"
    if kind == "ray client refused":
        return f"ray://127.0.0.1:{free_port()}"
    if kind == "mute":
        return request.getfixturevalue("mute_listener")
    if kind == "http":
        return request.getfixturevalue("http_listener")
    raise AssertionError(kind)


KINDS = [
    "refused",
    "port out of range",
    "port zero",
    "ipv6 refused",
    "ray client refused",
    "mute",
    "http",
]


@pytest.mark.parametrize("kind", KINDS)
def test_an_address_that_does_not_answer_fails_in_seconds(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    address = unreachable(kind, request)
    out = tmp_path / "out"
    argv = ["run", "--preset", str(one_cell_preset(tmp_path)), "--out", str(out)]
    t0 = time.monotonic()
    code = main([*argv, "--executor", "ray", "--address", address])
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2, err
    assert took < ray_executor.PROBE_S + 5, f"{took:.1f} s"  # not Ray's 40 s and more
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "ray" in errors[0] and address.removeprefix("ray://") in errors[0]
    assert "rpc_client" not in err and "gcs_client" not in err  # no C++ warning
    assert not out.exists() or not any(out.iterdir())  # no run folder
    assert not ray.is_initialized()


class FakeLocal:
    """Stands in for a local Ray's folder and reaper: nothing starts."""

    def __init__(self) -> None:
        self.folder = Path(os.environ.get("TMPDIR", "/tmp")) / "nst-tui-ray-fake"
        self.closed = False

    def note(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_start(monkeypatch: pytest.MonkeyPatch):
    """connect("") with ray.init replaced by the test's; every Ray start unwound after."""
    release = threading.Event()
    monkeypatch.setattr(ray_executor.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray_local, "LocalRay", FakeLocal)
    monkeypatch.setattr(ray_executor, "_local", None)
    monkeypatch.setattr(ray_executor, "_pending", None)
    monkeypatch.setattr(ray_executor, "_forever", release)
    yield lambda init: monkeypatch.setattr(ray_executor.ray, "init", init)
    release.set()  # the init threads, which wait for good after a start, end


def test_a_signal_while_ray_starts_acts_at_once(fake_start) -> None:
    stuck = threading.Event()
    fake_start(lambda **kw: stuck.wait(20))  # a Ray that takes its time
    heard: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            ray_executor.connect("", lambda msg, frac=None: None)
        took = time.monotonic() - t0
    finally:
        timer.cancel()
        stuck.set()
        signal.signal(signal.SIGINT, old)
    assert heard == [signal.SIGINT]  # the caller's handler ran (the CLI's: cancel, say so)
    assert took < 2.5, f"{took:.1f} s"


def test_ray_lines_on_descriptor_2_stay_off_the_terminal(fake_start, capfd) -> None:
    def noisy_init(**kwargs: object) -> None:  # as Ray's C++ GCS client writes
        os.write(2, b"[2026-12-07 W 1 1] rpc_client.h:153: Failed to connect to GCS\n")

    fake_start(noisy_init)
    ray_executor.connect("", lambda msg, frac=None: None)
    print("after", file=sys.stderr)
    err = capfd.readouterr().err
    assert "rpc_client" not in err
    assert "after" in err  # the descriptor is the terminal's again


def test_ray_keeps_the_callers_signal_handlers(fake_start) -> None:
    import ctypes

    libc = ctypes.CDLL(None)

    def fake_init(**kwargs: object) -> None:  # as Ray's core worker does, in C
        libc.signal(signal.SIGTERM, 0)  # SIG_DFL: the process would die

    heard: list[int] = []

    def mine(signum: int, frame: object) -> None:
        heard.append(signum)

    fake_start(fake_init)
    old = signal.signal(signal.SIGTERM, mine)
    try:
        ray_executor.connect("", lambda msg, frac=None: None)
        assert signal.getsignal(signal.SIGTERM) is mine
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 2
        while not heard and time.monotonic() < deadline:
            time.sleep(0.01)
        assert heard == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, old)


def test_ray_that_never_answers_is_given_up_on(fake_start, monkeypatch) -> None:
    stuck = threading.Event()
    fake_start(lambda **kw: stuck.wait(20))
    monkeypatch.setattr(ray_executor, "START_S", 0.5)
    try:
        with pytest.raises(ray_executor.NSTError, match="did not answer within"):
            ray_executor.connect("", lambda msg, frac=None: None)
        with pytest.raises(ray_executor.NSTError, match="still waiting"):
            ray_executor.connect("", lambda msg, frac=None: None)
    finally:
        stuck.set()


# ---- what a dead nst-tui left --------------------------------------------------------


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def test_the_next_start_cleans_what_a_dead_one_left(tmp_path: Path) -> None:
    """Folders whose owner is gone lose their processes and go; the living's stay."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid with no process now
    agent = sleeper()  # stands in for a DashboardAgent that outlived its raylet
    try:
        dead = tmp_path / f"{ray_local.PREFIX}dead"
        dead.mkdir()
        (dead / "session_x" / "logs").mkdir(parents=True)
        (dead / ray_local.OWNER).write_text(f"{gone.pid} 12345.0\n")
        when = ray_local.started(agent.pid)
        (dead / ray_local.PIDS).write_text(f"{agent.pid} {when}\n")
        living = tmp_path / f"{ray_local.PREFIX}living"
        living.mkdir()
        ray_local.write_owner(living)
        starting = tmp_path / f"{ray_local.PREFIX}starting"  # no owner yet: a start under way
        starting.mkdir()
        reused = sleeper()  # a pid that a dead owner's file names, now someone else's
        try:
            (dead / ray_local.PIDS).write_text(f"{agent.pid} {when}\n{reused.pid} 1.0\n")
            removed = ray_local.clean_stale(tmp_path)
            assert removed == [dead]
            assert agent.wait(5) == -signal.SIGKILL
            assert reused.poll() is None  # not the process the file meant: left alone
        finally:
            reused.kill()
            reused.wait()
        assert living.is_dir() and starting.is_dir() and not dead.exists()
    finally:
        agent.kill()
        agent.wait()


def test_a_new_folder_cleans_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    left = tmp_path / f"{ray_local.PREFIX}left"
    left.mkdir()
    (left / ray_local.OWNER).write_text("1 1.0\n")  # pid 1, started at another time: gone
    folder = ray_local.new_folder()
    assert folder.parent == tmp_path and folder.name.startswith(ray_local.PREFIX)
    assert not left.exists()
    assert ray_local.owned_by_the_living(folder)


# ---- ray://: what the docs promise is installed -----------------------------------


def test_the_ray_extra_brings_the_client() -> None:
    import re
    import tomllib

    from conftest import ROOT

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    ray_req = [r for r in extras["ray"] if re.match(r"ray\s*(\[|$|[<>=~!])", r)]
    assert len(ray_req) == 1, extras["ray"]
    found = re.match(r"ray\s*\[([^\]]*)\]", ray_req[0])
    # grpcio: ray.init("ray://...") refuses without it
    assert found and "client" in [e.strip() for e in found.group(1).split(",")], ray_req


def test_ray_client_missing_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "grpc" else find(name, *a)
    )
    argv = ["run", "--preset", str(one_cell_preset(tmp_path)), "--out", str(tmp_path / "out")]
    address = f"ray://127.0.0.1:{free_port()}"
    assert main([*argv, "--executor", "ray", "--address", address]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "pip install 'nst-tui[ray]'" in errors[0], errors
