"""The Ray executor on a local Ray started here (2 CPUs, shared by this module's tests):
the same sweep folder as a local run, cancel, the benchmark, and a worker killed mid-run
(last: the workers the others reuse are warm until then)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, assert_alike_but_for_batch_rounding
from PIL import Image

from nst_tui.cli import main
from nst_tui.engine.events import Finished, Progress
from nst_tui.job.events import CellEvent, JobEvent
from nst_tui.job.plan import expand
from nst_tui.job.run import run_job
from nst_tui.presets import sweep_toml

ray = pytest.importorskip("ray")  # the extra: pip install 'nst-tui[ray]'
from nst_tui.job.ray_executor import RayExecutor  # noqa: E402

pytestmark = pytest.mark.slow

SWEEP = {"content_layers": [[1], [3]], "alpha": [1.0, 5.0]}  # 4 cells, one batch locally
TIMING = {"wall_time_s", "it_per_s", "tflop_s", "of_peak", "started_at", "finished_at", "folder"}


@pytest.fixture(scope="module")
def cluster():
    # Workers at nice 0 as nst-tui starts them (Ray's 15 starves them behind other load).
    system = {"worker_niceness": 0}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=system)
    yield
    ray.shutdown()


def sweep_preset(folder: Path, **changes: object) -> Path:
    from nst_tui.config import Config

    cfg = Config.from_dict({**TINY, **changes})
    path = folder / "ray-sweep.toml"
    path.write_text(cfg.to_toml("a 4-cell sweep") + sweep_toml(SWEEP))
    return path


def run_cli(preset: Path, out: Path, *flags: str) -> Path:
    assert main(["run", "--preset", str(preset), "--out", str(out), *flags]) == 0
    (folder,) = out.iterdir()
    return folder


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_same_sweep_folder_as_local(cluster, tmp_path: Path) -> None:
    preset = sweep_preset(tmp_path)
    local = run_cli(preset, tmp_path / "local")
    remote = run_cli(preset, tmp_path / "ray", "--executor", "ray")

    assert files(remote) == files(local)
    assert {"sheet.png", "sheet.gif", "sweep.json", "sweep.toml"} <= set(files(remote))
    for name in files(local):
        if name.endswith(".png"):  # final images and the sheet: equal to float rounding
            a, b = pixels(local / name), pixels(remote / name)
            assert a.shape == b.shape, name
            assert_alike_but_for_batch_rounding(a, b)
        elif name.endswith(".gif"):
            with Image.open(local / name) as a, Image.open(remote / name) as b:
                assert (a.size, a.n_frames) == (b.size, b.n_frames), name
    l_sweep = json.loads((local / "sweep.json").read_text())
    r_sweep = json.loads((remote / "sweep.json").read_text())
    assert r_sweep["status"] == "finished"
    # Two workers: the plan gives each a batch of two, where one process ran one of four.
    assert [b["cells"] for b in r_sweep["batches"]] == [[0, 1], [2, 3]]
    for a, b in zip(l_sweep["cells"], r_sweep["cells"], strict=True):
        assert b["status"] == "finished"
        assert (a["folder"], a["label"], a["iterations_done"]) == (
            b["folder"],
            b["label"],
            b["iterations_done"],
        )
        assert b["final_losses"] == pytest.approx(a["final_losses"], rel=1e-4)
        l_cfg = tomllib.loads((local / a["folder"] / "config.toml").read_text())
        r_cfg = tomllib.loads((remote / b["folder"] / "config.toml").read_text())
        assert r_cfg == {**l_cfg, "executor": "ray"}
        l_run = json.loads((local / a["folder"] / "run.json").read_text())
        r_run = json.loads((remote / b["folder"] / "run.json").read_text())
        # sweep: its folder and batch differ; memory: the free memory each process saw
        same = TIMING | {"sweep", "final_losses", "memory"}
        assert {k: v for k, v in r_run.items() if k not in same} == {
            k: v for k, v in l_run.items() if k not in same
        }
        plan = ("budget", "device", "plan")
        assert [r_run["memory"].get(k) for k in plan] == [l_run["memory"].get(k) for k in plan]
        assert r_run["final_losses"] == pytest.approx(l_run["final_losses"], rel=1e-4)


def test_sigterm_stops_the_remote_work(
    cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nst_tui.cli_progress import JobView

    hear, sent = JobView.__call__, []

    def hear_then_terminate(view: JobView, event: JobEvent) -> None:
        hear(view, event)
        if isinstance(event, CellEvent) and isinstance(event.event, Progress) and not sent:
            sent.append(event)  # once: a second signal stops at once, with no sheet
            os.kill(os.getpid(), signal.SIGTERM)  # at a loss row: the workers are mid-run

    monkeypatch.setattr(JobView, "__call__", hear_then_terminate)
    preset = sweep_preset(tmp_path, iterations=400, sav_freq=5)
    out = tmp_path / "out"
    code = main(["run", "--preset", str(preset), "--out", str(out), "--executor", "ray"])
    assert code == 130
    (folder,) = out.iterdir()
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sweep["status"] == "cancelled"
    assert (folder / "sheet.png").is_file()
    for cell in sweep["cells"]:
        assert cell["status"] == "cancelled"
        assert 0 < cell["iterations_done"] < 400
        run = json.loads((folder / cell["folder"] / "run.json").read_text())
        assert run["status"] == "cancelled"
        assert (folder / cell["folder"] / "final.png").is_file()


def test_the_benchmark_runs_on_this_cluster(cluster, tmp_path: Path) -> None:
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("ray_sweep", ROOT / "benchmarks/ray_sweep.py")
    bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    out = tmp_path / "bench.json"
    argv = ["--cells", "2", "--size", "32", "--iterations", "2", "--repeats", "1"]
    assert bench.main([*argv, "--workers", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["executor"], r["workers"], r["cells"]) for r in rows] == [
        ("local", 1, 2),
        ("ray-2", 2, 2),
    ]
    assert all(r["cell_it_per_s"] > 0 and r["loop_cell_it_per_s"] > 0 for r in rows)
    assert rows[1]["runs"][0]["batches"] == [[0], [1]]  # one cell per worker


def test_cancel_before_a_batch_starts_records_its_cells(cluster, tmp_path: Path) -> None:
    from conftest import tiny_config

    job = expand(tiny_config(iterations=400, sav_freq=5), SWEEP, "queued")
    cancel = threading.Event()

    def on_event(event: JobEvent) -> None:
        if isinstance(event, CellEvent) and isinstance(event.event, Progress):
            cancel.set()

    one_worker = RayExecutor(workers=1)  # batch 1 waits for batch 0's worker
    result = run_job(
        job,
        out_root=tmp_path,
        listeners=[on_event],
        cancel=cancel,
        executor=one_worker,
        max_batch_pixels=2 * 32 * 32,
    )
    assert result.status == "cancelled"
    ran, queued = result.cells[:2], result.cells[2:]
    assert all(0 < c.finished.iterations_done < 400 for c in ran)
    for cell in queued:
        assert cell.finished.status == "cancelled"
        assert cell.finished.reason == "not run: cancelled before it started"
        assert json.loads((cell.folder / "run.json").read_text())["status"] == "cancelled"
        assert not (cell.folder / "final.png").exists()  # not a 1x1 black pixel
    assert (result.folder / "sheet.png").is_file() and (result.folder / "sheet.gif").is_file()


def test_images_travel_as_bytes(tmp_path: Path) -> None:
    from conftest import STARRY, TUBINGEN, tiny_config

    from nst_tui.job.plan import single
    from nst_tui.job.ray_executor import localize, read_images

    earlier = tmp_path / "earlier-run"
    earlier.mkdir()
    (earlier / "final.png").write_bytes(TUBINGEN.read_bytes())
    cfg = tiny_config(
        style_images=[str(STARRY), "builtin:swirls.png"], init=f"run:{earlier}", device="cuda:1"
    )
    images = read_images([cfg])
    assert set(images) == {str(TUBINGEN), str(STARRY), f"run:{earlier}"}
    (cell,) = localize(single(cfg).cells, images, tmp_path / "worker")
    there = cell.config
    assert Path(there.content_image).read_bytes() == TUBINGEN.read_bytes()
    assert Path(there.style_image).read_bytes() == STARRY.read_bytes()
    assert Path(there.style_images[0]).read_bytes() == STARRY.read_bytes()
    assert there.style_images[1] == "builtin:swirls.png"  # inside the package there too
    assert Path(there.init).read_bytes() == TUBINGEN.read_bytes()
    assert str(tmp_path / "worker") in there.init
    assert there.device == "cuda"  # Ray gives the task its GPU as the only one it sees


def test_a_killed_worker_fails_its_cells_and_the_others_finish(cluster, tmp_path: Path) -> None:
    from conftest import tiny_config

    job = expand(tiny_config(iterations=60, sav_freq=5), SWEEP, "killed")
    executor = RayExecutor()
    killed: list[int] = []
    ends: dict[int, Finished] = {}

    def on_event(event: JobEvent) -> None:
        if not isinstance(event, CellEvent):
            return
        if isinstance(event.event, Finished):
            ends[event.cell] = event.event
        elif isinstance(event.event, Progress) and event.cell in (0, 1) and not killed:
            _, pid = executor.claims[0]  # batch 0 holds cells 0 and 1
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    result = run_job(job, out_root=tmp_path, listeners=[on_event], executor=executor)
    assert killed
    assert result.status == "failed"
    statuses = [c.finished.status for c in result.cells]
    assert statuses == ["failed", "failed", "finished", "finished"]
    for cell in result.cells[:2]:
        assert f"pid {killed[0]}" in cell.finished.reason and "died" in cell.finished.reason
        assert 0 < cell.finished.iterations_done < 60  # what it had reported is kept
        run = json.loads((cell.folder / "run.json").read_text())
        assert run["status"] == "failed" and "died" in run["reason"]
        assert pixels(cell.folder / "final.png").shape[:2] == (24, 32)  # its last frame
    for cell in result.cells[2:]:
        assert cell.finished.iterations_done == 60
    assert (result.folder / "sheet.png").is_file()
    sweep = json.loads((result.folder / "sweep.json").read_text())
    assert [c["status"] for c in sweep["cells"]] == statuses


# ---- ray:// and what a local Ray leaves behind (issue 24) ---------------------------


def test_a_ray_client_address_runs_the_sweep(cluster, tmp_path: Path) -> None:
    """ray://HOST:PORT, as the README promises: a client server in front of this cluster."""
    import socket
    import subprocess
    import sys
    import time

    from nst_tui.job.ray_executor import probe

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gcs = ray.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "ray.util.client.server", f"--address={gcs}"]
    command += ["--host=127.0.0.1", f"--port={port}", "--mode=legacy"]
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe(f"ray://127.0.0.1:{port}")
                break
            except Exception:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.5)
        out = tmp_path / "out"
        argv = ["run", "--preset", str(sweep_preset(tmp_path)), "--out", str(out)]
        argv += ["--executor", "ray", "--address", f"ray://127.0.0.1:{port}"]
        done = subprocess.run(
            [sys.executable, "-m", "nst_tui.cli", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        (folder,) = out.iterdir()
        sweep = json.loads((folder / "sweep.json").read_text())
        assert sweep["status"] == "finished"
        assert [c["status"] for c in sweep["cells"]] == ["finished"] * 4
    finally:
        server.terminate()
        server.wait(30)


LOCAL_RAY = """
import json, os, signal, sys, time
from nst_tui.job import ray_executor, ray_local
ray_executor.connect("", lambda msg, frac=None: None)
local = ray_executor._local
time.sleep(1)  # the raylet's agents and workers are up
print(json.dumps({"folder": str(local.folder), "reaper": local.reaper.pid,
                  "ray": ray_local.ray_processes(os.getpid(), local.folder)}), flush=True)
how = sys.argv[1]
if how == "os._exit":
    os._exit(0)  # the dashboard's way out when the terminal is gone: no atexit
if how != "return":
    time.sleep(600)  # the test kills it
"""


def running(pid: int, when: float) -> bool:
    import psutil  # Ray's copy, importable once ray is

    from nst_tui.job import ray_local

    try:
        zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    return not zombie and ray_local.alive(pid, when)


@pytest.mark.parametrize("how", ["return", "os._exit", "SIGKILL", "SIGKILL with its reaper"])
def test_a_local_ray_leaves_nothing_behind(how: str) -> None:
    """However nst-tui ends, its local Ray's processes (agents included) and its folder go:
    at exit, by the reaper, or (the reaper killed too) by the next start."""
    import subprocess
    import sys
    import tempfile
    import time

    from nst_tui.job import ray_local

    short = Path(tempfile.mkdtemp(prefix="nst-t-", dir="/tmp"))  # Ray's sockets: < 108 bytes
    env = {**os.environ, "RAY_TMPDIR": str(short)}
    env.pop("RAY_ADDRESS", None)
    child = subprocess.Popen(
        [sys.executable, "-c", LOCAL_RAY, how.split()[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        seen = json.loads(child.stdout.readline())  # type: ignore[union-attr]
        folder, ray_pids = Path(seen["folder"]), [tuple(p) for p in seen["ray"]]
        assert folder.parent == short and folder.is_dir()
        names = " ".join(str(p) for p in ray_pids)
        assert len(ray_pids) >= 4, names  # gcs_server, raylet, the agents at least
        if how.startswith("SIGKILL"):
            if how.endswith("reaper"):
                os.kill(seen["reaper"], signal.SIGKILL)
            child.kill()
        child.wait(60)
        if how.endswith("reaper"):
            time.sleep(1)
            assert folder.is_dir()  # nobody left to clean: the next start does
            assert ray_local.clean_stale(short) == [folder]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [p for p in ray_pids if running(*p)]
            if not left and not folder.exists():
                break
            time.sleep(0.2)
        assert not [p for p in ray_pids if running(*p)]
        assert not folder.exists()
    finally:
        child.kill()
        child.wait()
        shutil.rmtree(short, ignore_errors=True)
