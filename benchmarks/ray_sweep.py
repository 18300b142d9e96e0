"""Cell-iterations per second of a sweep: the local executor against Ray with N workers.

    python benchmarks/ray_sweep.py [--cells 4 8] [--size 64] [--iterations 40]
        [--device cpu|cuda|auto] [--workers 1 2] [--address auto|HOST:PORT]
        [--num-cpus N] [--repeats 2] [--json FILE]

Each sweep (4 cells: content_layers x 2 alphas; 8 cells: x 4 alphas) runs through
`run_job` exactly as `nst-tui run` does, once per executor: the local one (this
process, one device, the cells batched), then Ray with each worker count (each
worker one batch: one GPU, or on a CPU-only cluster an equal share of its CPUs).
Reported per run: cell-iterations over the job's wall time (from handing the batches
to the executor to the last cell's end: preparing, the loops, the events coming
back), and the loop alone (cell-iterations over the slowest batch's loop time).

Every executor runs a warm-up job first (not reported): a fresh Ray worker imports
torch and loads the weights once, as a local process does once per session.

Without --address a local Ray starts here (--num-cpus: its CPUs, default all), its
workers at nice 0 like this process (Ray's default, 15, loses to any other load).
On a GPU box: --device cuda; with a cluster: --address auto on its head node, or
--address HOST:PORT. Ray gives each task a whole GPU, so on one GPU more workers
than one wait for it: --workers is capped at the cluster's GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_tui.config import Config  # noqa: E402
from nst_tui.job.events import JobResult  # noqa: E402
from nst_tui.job.executor import Executor  # noqa: E402
from nst_tui.job.local import LocalExecutor  # noqa: E402
from nst_tui.job.plan import Job, expand  # noqa: E402
from nst_tui.job.run import run_job  # noqa: E402

# The study's pairs, downsized, ship in tests/data (see its SOURCES.md);
# NST_TUI_IMAGES points at other copies of the same file names.
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))


def sweep(cells: int, size: int, iterations: int, device: str) -> Job:
    base = Config(
        content_image=str(IMAGES / "tubingen.jpg"),
        style_image=str(IMAGES / "starry_night.jpg"),
        size=size,
        iterations=iterations,
        sav_freq=10,
        backbone="vgg16-caffe",
        device=device,
    )
    alphas = [1.0, 5.0, 10.0, 20.0][: cells // 2]
    return expand(base, {"content_layers": [[1], [3]], "alpha": alphas}, f"bench-{cells}")


def measure(job: Job, executor: Executor, out: Path) -> dict[str, Any]:
    result: JobResult = run_job(job, out_root=out, executor=executor)
    if result.status != "finished":
        reasons = {c.finished.reason for c in result.cells}
        raise SystemExit(f"{executor.name}: the sweep ended {result.status}: {reasons}")
    loops = json.loads((result.folder / "sweep.json").read_text())["batches"]
    # Batches run side by side on Ray and one after another locally.
    sides = max if executor.name == "ray" else sum
    loop_wall = sides(b["wall_time_s"] for b in loops)
    return {
        "wall_s": round(result.wall_time, 3),
        "cell_it_per_s": round(result.cell_it_per_s, 2),
        "loop_cell_it_per_s": round(result.cell_iterations / max(loop_wall, 1e-9), 2),
        "batches": [b["cells"] for b in loops],
        "device": result.device,
    }


def start_ray(args: argparse.Namespace) -> None:
    import ray

    if not ray.is_initialized():
        if args.address:
            ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
        else:  # as nst-tui starts one (nst_tui.job.ray_executor.connect), with --num-cpus
            ray.init(
                num_cpus=args.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                _system_config={"worker_niceness": 0},
            )


def ray_executor(address: str, workers: int) -> Executor:
    from nst_tui.job.ray_executor import RayExecutor as Ray  # ray: only when asked for

    return Ray(address, workers=workers)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="nst-tui-bench-"))
    setups: list[tuple[str, Any]] = [("local", LocalExecutor)]
    for w in args.workers:
        setups.append((f"ray-{w}", lambda w=w: ray_executor(args.address or "", workers=w)))
    results: list[dict[str, Any]] = []
    for name, make in setups:
        if name != "local":  # after the local runs: Ray's idle processes cost a few % too
            start_ray(args)
        warm = sweep(min(args.cells), args.size, min(args.iterations, 10), args.device)
        measure(warm, make(), out)  # not reported: imports, weights, worker start
        for cells in args.cells:
            job = sweep(cells, args.size, args.iterations, args.device)
            runs = []
            for _ in range(args.repeats):
                executor = make()
                runs.append(measure(job, executor, out))
            row = {
                "executor": name,
                "workers": getattr(executor, "workers", 1),
                "cells": cells,
                "cell_it_per_s": statistics.median(r["cell_it_per_s"] for r in runs),
                "loop_cell_it_per_s": statistics.median(r["loop_cell_it_per_s"] for r in runs),
                "runs": runs,
            }
            results.append(row)
            print(
                f"{name:>8}  {cells} cells  workers {row['workers']}  "
                f"{row['cell_it_per_s']:7.1f} cell-it/s  (loop {row['loop_cell_it_per_s']:.1f})  "
                f"batches {runs[0]['batches']}",
                flush=True,
            )
    return {
        "benchmark": "ray_sweep",
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "size": args.size,
        "iterations": args.iterations,
        "device": args.device,
        "address": args.address or "local Ray",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[4, 8], choices=[2, 4, 6, 8])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="none: local only")
    parser.add_argument("--address", help="a running Ray cluster (default: start one here)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run_all(args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
