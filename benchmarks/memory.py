"""The memory plan against measured peaks: does the prediction hold, and does a budget bound
a run's memory at any size?

    python benchmarks/memory.py [--sections table recompute bounded speed big allocator]
        [--json FILE] [--rows 2048 3072 ...]   # --rows: the table's rows named so
        [--budget 3GiB] [--big-budget 4GiB] [--untiled-limit 8GiB]
    python benchmarks/memory.py --calibrate [--json FILE]     # the model's constants

Every run is a fresh process of the real command line, `python -m nst_tui run ... --json`
(local executor, CPU), and its peak is the child's own: the ru_maxrss os.wait4 reports
(the whole process: Python, torch, weights, everything). The prediction is what a user
sees first: `nst-tui run --plan --json` with the same settings, in a fresh process of its
own, before torch loads. Each run's run.json also records the plan the engine made on
the device and the peak it measured there (`memory`).

Sections:
- table: predicted against measured for configurations from 128 to 3072 px, untiled and
  in tiles, Adam and L-BFGS, fp32 and bf16 (the default, precision auto, is bf16 on a CPU
  with AMX).
- recompute: configurations as they are, then in a budget between the plan's peak as it
  is and its peak recomputing blocks (so the plan recomputes): both peaks and both it/s.
- bounded: with max_memory = --budget, runs at 512, 1024, 2048 and 3072 px each stay
  under it (measured), while the untiled peak grows with the pixels (measured where the
  plan predicts at most --untiled-limit, predicted beyond).
- speed: iterations per second untiled against in tiles (2x2) at 512 and 1024 px, side by
  side in this one process, alternating.
- big: a 4096 px run of two iterations within --big-budget, and how long an iteration took.
- allocator: the same run at 128 and 256 px with room to spare (the allocator roomy) and
  in a budget its peak is above TIGHT_SHARE of (tight), interleaved: it/s and peaks.

--calibrate runs the engine in-process per configuration (a fresh process each), resetting
the peak resident memory between the phases (Linux's clear_refs): loading torch, the
weights, the targets' pass, the optimization's steps; then fits the model's constants
(nst_tui/memory.py) to those phases and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_tui.memory import HEADROOM, TIGHT_SHARE  # noqa: E402
from nst_tui.sizes import GiB, MiB, parse_size, show_bytes  # noqa: E402

IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))
CONTENT = str(IMAGES / "tubingen.jpg")
STYLE = str(IMAGES / "starry_night.jpg")
BASE = {
    "content_image": CONTENT,
    "style_image": STYLE,
    "backbone": "vgg16-caffe",  # ships offline; `auto` would probe the network first
    "device": "cpu",
    "sav_freq": 1,
    "init": "content",
}
TOLERANCE = 0.15


def sets(values: dict[str, Any]) -> list[str]:
    out = []
    for key, value in values.items():
        out += ["--set", f"{key}={json.dumps(value)}"]  # JSON's scalars and lists are TOML
    return out


def predicted(values: dict[str, Any]) -> dict[str, Any]:
    """`nst-tui run --plan --json` in a fresh process: the plan before torch loads."""
    done = subprocess.run(
        [sys.executable, "-m", "nst_tui", "run", "--plan", "--json", *sets(values)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    if not lines:
        return {"error": done.stderr.strip()}
    (plan,) = json.loads(lines[-1])["plans"]
    return dict(plan)


def measured(values: dict[str, Any], out: Path) -> dict[str, Any]:
    """`nst-tui run ... --json` in a fresh process; its peak resident memory from wait4."""
    cmd = [sys.executable, "-m", "nst_tui", "run", *sets(values), "--out", str(out), "--json"]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=so, stderr=se)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode()
    wall = time.perf_counter() - start
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    row: dict[str, Any] = {"rc": proc.returncode, "peak_rss_bytes": peak, "process_s": wall}
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        row["error"] = stderr.strip().splitlines()[-1:] or ["no output"]
        return row
    record = json.loads(lines[-1])
    row.update(
        status=record.get("status"),
        it_per_s=record.get("it_per_s"),
        wall_time_s=record.get("wall_time_s"),
        iterations_done=record.get("iterations_done"),
        precision=record.get("precision"),
        accel=record.get("accel"),
        memory=record.get("memory"),
    )
    return row


def compare(name: str, values: dict[str, Any], out: Path) -> dict[str, Any]:
    values = {**BASE, **values}
    if values["backbone"] == VGG19:
        values["backbone"] = str(random_vgg19(out / "vgg19-random.pth"))
    plan = predicted(values)
    run = measured(values, out)
    row = {"name": name, "settings": values, "plan": plan, "run": run}
    if "predicted_peak_bytes" in plan and run.get("rc") == 0:
        row["error"] = plan["predicted_peak_bytes"] / run["peak_rss_bytes"] - 1
    # The engine plans again once torch and the weights are in (it knows the process's
    # memory then): where its tiles differ from the first plan's, its own prediction
    # (run.json) is the one of the run measured.
    own = (run.get("memory") or {}).get("predicted_peak_bytes")
    if own and run.get("rc") == 0:
        row["run_error"] = own / run["peak_rss_bytes"] - 1
    return row


def show(row: dict[str, Any]) -> str:
    plan, run = row["plan"], row["run"]
    pred = plan.get("predicted_peak_bytes")
    meas = run.get("peak_rss_bytes")
    error, own = row.get("error"), row.get("run_error")
    memory = run.get("memory") or {}
    replanned = memory.get("plan") and memory.get("plan") != plan.get("plan")
    return (
        f"{row['name']:<34} {plan.get('plan', plan.get('error', '?')):<26} "
        f"pred {show_bytes(pred) if pred else '-':>9}  meas {show_bytes(meas) if meas else '-':>9}"
        f"  {'' if error is None else f'{100 * error:+.1f}%'}"
        + (f"  (ran {memory['plan']}: {100 * own:+.1f}%)" if replanned and own is not None else "")
        + (f"  FAILED {run.get('error')}" if run.get("rc") else "")
    )


# ---- sections --------------------------------------------------------------------


# None of these is a calibration configuration (CALIBRATION below): the table checks the
# fitted model on runs it was not fitted to. VGG19 is a random state dict in torchvision's
# layout (its ImageNet weights cannot be downloaded here): the same shapes, the same memory.
VGG19 = "VGG19"  # replaced by the random state dict's path
TABLE = [
    ("128 px, adam, untiled", {"size": 128, "iterations": 3}),
    ("640 px, adam, untiled, fp32", {"size": 640, "iterations": 3, "precision": "fp32"}),
    ("768 px, lbfgs h5, untiled", {"size": 768, "iterations": 8, "optimizer": "lbfgs",
                                   "history": 5}),
    ("1024 px, adam, vgg19, w2, untiled", {"size": 1024, "iterations": 3, "backbone": VGG19,
                                           "style_stats": "w2"}),
    ("1280 px, adam, untiled", {"size": 1280, "iterations": 3}),
    ("1280 px, adam, tiles of 384, fp32", {"size": 1280, "iterations": 3, "tile": 384,
                                           "precision": "fp32"}),
    ("1536 px, lbfgs h4, tiles of 768", {"size": 1536, "iterations": 6, "optimizer": "lbfgs",
                                         "history": 4, "tile": 768}),
    ("2048 px, adam, 3GiB (plan's tiles)", {"size": 2048, "iterations": 2,
                                            "max_memory": "3GiB"}),
    ("3072 px, adam, 3GiB (plan's tiles)", {"size": 3072, "iterations": 2,
                                            "max_memory": "3GiB"}),
]  # fmt: skip


def random_vgg19(path: Path) -> Path:
    """A VGG19 state dict of random conv weights in torchvision's layout (features.N.*)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    state, index, c_in = {}, 0, 3
    for block, n in enumerate((2, 2, 4, 4, 4)):
        width = (64, 128, 256, 512, 512)[block]
        for _ in range(n):
            std = (2.0 / (c_in * 9)) ** 0.5
            state[f"features.{index}.weight"] = torch.randn(width, c_in, 3, 3, generator=gen) * std
            state[f"features.{index}.bias"] = torch.zeros(width)
            index, c_in = index + 2, width
        index += 1  # the pool
    torch.save(state, path)
    return path


# --quick (the test suite's): the same sections at sizes of seconds.
QUICK_TABLE = [
    ("64 px, adam, untiled", {"size": 64, "iterations": 2, "max_memory": "3GiB"}),
    ("64 px, lbfgs h2, tiles of 32", {"size": 64, "iterations": 3, "optimizer": "lbfgs",
                                      "history": 2, "tile": 32}),
]  # fmt: skip


QUICK_RECOMPUTE = [("256 px, adam, fp32", {"size": 256, "iterations": 2, "precision": "fp32"})]


def section_table(
    out: Path,
    table: list[tuple[str, dict[str, Any]]],
    rows: list[dict[str, Any]],
    save: Callable[[], None],
) -> None:
    """Each configuration's row, appended to `rows` and saved as it comes: a run cut short
    (a 3072 px row takes most of an hour on 2 cores) leaves the rows it measured."""
    for name, values in table:
        row = compare(name, values, out)
        print(show(row), flush=True)
        rows.append(row)
        save()


def section_bounded(
    out: Path, budget: str, limit: int, done: list[dict[str, Any]], sizes: list[int]
) -> dict[str, Any]:
    rows = []
    for size in sizes:
        values = {"size": size, "iterations": 2, "max_memory": budget}
        reuse = next((r for r in done if r["settings"] == {**BASE, **values}), None)
        row = reuse or compare(f"{size} px, max_memory {budget}", values, out)
        untiled_values = {**BASE, "size": size, "iterations": 2, "max_memory": "1TiB"}
        untiled = predicted(untiled_values)
        row["untiled_predicted_bytes"] = untiled.get("predicted_peak_bytes")
        # A row that fits its budget as it is, with the allocator it would have without
        # the budget, is already the untiled run: measured once.
        plan = row["plan"]
        row["untiled_same_run"] = plan.get("plan") == untiled.get("plan") == "fits" and (
            plan.get("allocator") == untiled.get("allocator")
        )
        if row["untiled_same_run"]:
            row["untiled_measured_bytes"] = row["run"].get("peak_rss_bytes")
        elif (untiled.get("predicted_peak_bytes") or limit + 1) <= limit:
            measure = measured(untiled_values, out)
            row["untiled_measured_bytes"] = measure.get("peak_rss_bytes")
        print(
            show(row),
            f"| untiled: pred {show_bytes(row['untiled_predicted_bytes'] or 0)}",
            f"meas {show_bytes(row.get('untiled_measured_bytes') or 0)}"
            + (" (the same run)" if row["untiled_same_run"] else "")
            if row.get("untiled_measured_bytes")
            else "(not measured: above the limit)",
            flush=True,
        )
        rows.append(row)
    return {"budget": budget, "rows": rows}


def section_speed(sizes: list[int], iterations: int, repeats: int) -> list[dict[str, Any]]:
    """it/s untiled against 2x2 tiles, alternating in this process (same load for both)."""
    import torch

    from nst_tui.config import Config
    from nst_tui.engine.optimize import optimize
    from nst_tui.engine.prepare import prepare

    rows = []
    for size in sizes:
        rates: dict[str, list[float]] = {"untiled": [], "tiled": []}
        base = {**BASE, "size": size, "iterations": iterations, "sav_freq": iterations}
        tile = size // 2
        for _ in range(repeats):
            for mode in ("untiled", "tiled"):
                cfg = Config.from_dict({**base, "tile": tile if mode == "tiled" else 0})
                prepared = prepare(cfg)
                start = time.perf_counter()
                optimize(prepared.objective, prepared.canvases, [lambda e: None])
                rates[mode].append(iterations / (time.perf_counter() - start))
                del prepared
        untiled, tiled = (statistics.median(rates[k]) for k in ("untiled", "tiled"))
        row = {
            "size": size,
            "tile": tile,
            "iterations": iterations,
            "repeats": repeats,
            "untiled_it_s": untiled,
            "tiled_it_s": tiled,
            "ratio": tiled / untiled,
            "threads": torch.get_num_threads(),
        }
        print(
            f"{size} px: untiled {untiled:.3f} it/s, tiles of {tile} {tiled:.3f} it/s "
            f"({tiled / untiled:.2f}x)",
            flush=True,
        )
        rows.append(row)
    return rows


# Runs a budget puts between the peak as it is and the peak recomputing blocks.
RECOMPUTE = [
    ("768 px, adam, fp32", {"size": 768, "iterations": 3, "precision": "fp32"}),
    ("1280 px, adam", {"size": 1280, "iterations": 3}),
    ("1024 px, lbfgs h5, relu taps", {"size": 1024, "iterations": 6, "optimizer": "lbfgs",
                                      "history": 5, "layer_type": "relu"}),
]  # fmt: skip


def section_recompute(out: Path, table: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each configuration as it is (a budget of 1 TiB), then with the budget halfway
    between the plan's two peaks (the plan then recomputes blocks): predicted against
    measured peak, and both runs' it/s (fresh processes, one after the other)."""
    rows = []
    for name, values in table:
        plain = compare(f"{name}, as it is", {**values, "max_memory": "1TiB"}, out)
        plan = plain["plan"]
        between = (plan["untiled_peak_bytes"] + plan["recompute_peak_bytes"]) / 2
        budget = f"{between / HEADROOM / MiB:.0f}MiB"
        recomputing = compare(f"{name}, recomputing", {**values, "max_memory": budget}, out)
        rate = [r["run"].get("it_per_s") or 0 for r in (plain, recomputing)]
        row = {"name": name, "plain": plain, "recomputing": recomputing, "budget": budget}
        row["speed_ratio"] = rate[1] / rate[0] if rate[0] else None
        print(show(plain), flush=True)
        print(show(recomputing), f"| {row['speed_ratio'] or 0:.2f}x the it/s", flush=True)
        rows.append(row)
    return rows


def section_allocator(
    out: Path, sizes: list[int], iterations: int, rounds: int
) -> list[dict[str, Any]]:
    """The same run with room to spare (roomy: glibc's reuse) and with a budget that puts
    its peak above TIGHT_SHARE of it (tight: blocks of 1 MiB or more given back when
    freed): it/s and predicted against measured peak, fresh processes, interleaved."""
    rows = []
    for size in sizes:
        values = {"size": size, "iterations": iterations, "sav_freq": 10}
        peak = predicted({**BASE, **values, "max_memory": "1TiB"})["predicted_peak_bytes"]
        budget = f"{peak / ((HEADROOM + TIGHT_SHARE) / 2) / MiB:.0f}MiB"
        runs: dict[str, list[dict[str, Any]]] = {"roomy": [], "tight": []}
        for _ in range(rounds):
            for mode, limit in (("roomy", "1TiB"), ("tight", budget)):
                row = compare(f"{size} px, {mode}", {**values, "max_memory": limit}, out)
                assert row["plan"].get("allocator") == mode, row["plan"]
                runs[mode].append(row)
                print(show(row), f"| {row['run'].get('it_per_s')} it/s", flush=True)
        best = {m: max(r["run"].get("it_per_s") or 0 for r in rs) for m, rs in runs.items()}
        ratio = best["tight"] / best["roomy"] if best["roomy"] else None
        rows.append({"size": size, "budget": budget, "runs": runs, "best_it_s": best,
                     "tight_over_roomy": ratio})  # fmt: skip
        print(f"{size} px: tight {best['tight']:.2f} it/s, roomy {best['roomy']:.2f}: "
              f"{ratio or 0:.2f}x", flush=True)  # fmt: skip
    return rows


def section_big(out: Path, budget: str, size: int) -> dict[str, Any]:
    values = {"size": size, "iterations": 2, "max_memory": budget, "sav_freq": 2}
    row = compare(f"{size} px, 2 iterations, {budget}", values, out)
    run = row["run"]
    if run.get("iterations_done"):  # the loop's own wall time: run.json's it/s is rounded
        row["seconds_per_iteration"] = run["wall_time_s"] / run["iterations_done"]
    print(show(row), f"| {row.get('seconds_per_iteration', 0):.0f} s/iteration", flush=True)
    return row


# ---- calibration -----------------------------------------------------------------------

CALIBRATION = [
    {"size": 256, "iterations": 6},
    {"size": 512, "iterations": 6},
    {"size": 768, "iterations": 4},
    {"size": 1024, "iterations": 3},
    {"size": 512, "iterations": 6, "precision": "fp32"},
    {"size": 1024, "iterations": 3, "precision": "fp32"},
    {"size": 512, "iterations": 12, "optimizer": "lbfgs", "history": 8},
    {"size": 768, "iterations": 3, "layer_type": "relu", "pooling": "avg"},
    {"size": 512, "iterations": 3, "style_scale": 2.0},
    {"size": 1024, "iterations": 3, "tile": 256},
    {"size": 1024, "iterations": 3, "tile": 512, "precision": "fp32"},
]


def probe(values: dict[str, Any]) -> dict[str, Any]:
    """In this (fresh) process: each phase's peak resident memory, the peak reset between
    them, and what the model predicts for each."""
    from nst_tui import probe as pr
    from nst_tui.heap import set_allocator

    set_allocator(True)  # each phase's tensors as they are: what the constants model
    before = pr.own_rss()
    import torch  # noqa: F401

    import nst_tui.job.local  # noqa: F401  (the engine, as a run loads it)
    from nst_tui.config import Config
    from nst_tui.engine.optimize import optimize
    from nst_tui.engine.prepare import get_backbone, prepare

    cfg = Config.from_dict(values)
    out: dict[str, Any] = {"settings": values, "start": before, "imported": pr.own_rss()}
    pr.reset_peak()
    get_backbone(cfg.backbone)
    out["weights_peak"], out["weights_after"] = pr.peak_rss(), pr.own_rss()
    pr.reset_peak()
    prepared = prepare(cfg)
    out["prepare_peak"], out["prepared"] = pr.peak_rss(), pr.own_rss()
    pr.reset_peak()
    optimize(prepared.objective, prepared.canvases, [lambda e: None])
    out["step_peak"] = pr.peak_rss()
    out["canvas"] = list(prepared.canvas.shape)
    out["tile"] = prepared.objective.tile
    out["bf16"] = prepared.objective.accel.bf16
    return out


STEP_CONSTANTS = ("BF16_MAPS", "STEP_OVERHEAD")
TARGET_CONSTANTS = ("NOGRAD_MAPS", "TARGETS_OVERHEAD")


def _bf16(row: dict[str, Any]) -> bool:
    """Whether a probed run computed in bf16 (probes of before this was recorded: what
    `auto` picks on this machine, the one that probed them)."""
    if "bf16" in row:
        return bool(row["bf16"])
    import torch

    from nst_tui.engine.accel import fast_bf16

    precision = row["settings"].get("precision", "auto")
    return precision == "bf16" or (precision == "auto" and fast_bf16(torch.device("cpu"))[0])


def model_phases(row: dict[str, Any], constants: dict[str, float]) -> dict[str, int]:
    """The model's phases for a probed row, with the given constants."""
    from nst_tui import memory as mem
    from nst_tui.config import Config

    saved = {k: getattr(mem, k) for k in constants}
    try:
        for k, v in constants.items():
            setattr(mem, k, v)
        cfg = Config.from_dict(row["settings"])
        h, w = row["canvas"][-2:]
        device = mem.Device("cpu", 64 * GiB, row["start"], False, False, _bf16(row))
        the_plan = mem.plan(cfg, (w, h), device, [(384, 240)])
        est = the_plan.last.untiled
        if row["tile"]:
            est = mem.fit_tiles_at(the_plan.context, the_plan.last, row["tile"]).estimate
        return est.phases
    finally:
        for k, v in saved.items():
            setattr(mem, k, v)


def fit(rows: list[dict[str, Any]], names: tuple[str, ...], phase: str, key: str) -> list[float]:
    """Least squares for constants the model is linear in: each one's column is the phase's
    change when it alone is 1 (the others 0)."""
    import numpy as np

    zero = {n: 0.0 for n in names}
    columns, target = [], []
    for row in rows:
        base = model_phases(row, zero)[phase]
        columns.append([model_phases(row, {**zero, n: 1.0})[phase] - base for n in names])
        target.append(row[key] - base)  # what the arithmetic leaves to the constants
    solution, *_ = np.linalg.lstsq(np.array(columns, float), np.array(target, float), rcond=None)
    return [float(v) for v in solution]


def calibrate(json_out: Path | None, refit: Path | None = None) -> None:
    from nst_tui import memory as mem

    rows: list[dict[str, Any]] = []
    if refit is not None:  # the probes of an earlier calibration, fitted again
        rows = json.loads(refit.read_text())["calibration"]
    for values in CALIBRATION if refit is None else []:
        settings = {**BASE, **values, "max_memory": "1TiB"}
        done = subprocess.run(
            [sys.executable, __file__, "--probe", json.dumps(settings)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode:
            print(values, "failed:", done.stderr.strip().splitlines()[-1:], flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        if json_out is not None:  # as they come: a calibration cut short keeps its probes
            json_out.write_text(json.dumps({"calibration": rows}, indent=1))
        print(
            f"{json.dumps(values):<70} imported {row['imported'] >> 20} MiB, weights "
            f"{row['weights_peak'] >> 20} ({row['weights_after'] >> 20} after), targets "
            f"{row['prepare_peak'] >> 20} ({row['prepared'] >> 20} after), step "
            f"{row['step_peak'] >> 20}",
            flush=True,
        )
    step = dict(zip(STEP_CONSTANTS, fit(rows, STEP_CONSTANTS, "step", "step_peak"), strict=True))
    targets = fit(rows, TARGET_CONSTANTS, "targets", "prepare_peak")
    fitted = {**step, **dict(zip(TARGET_CONSTANTS, targets, strict=True))}
    print("fitted:", {k: round(v, 3) for k, v in fitted.items()})
    print("current:", {k: getattr(mem, k) for k in fitted})
    for row in rows:
        now = model_phases(row, {k: getattr(mem, k) for k in fitted})
        new = model_phases(row, fitted)
        row["model_now"], row["model_fitted"] = now, new
        settings = {k: v for k, v in row["settings"].items() if k not in (*BASE, "max_memory")}
        print(
            f"{json.dumps(settings):<64} targets {row['prepare_peak'] / MiB:.0f} MiB, "
            f"model {now['targets'] / MiB:.0f} "
            f"({100 * (now['targets'] / row['prepare_peak'] - 1):+.1f}%)"
            f" | step {row['step_peak'] / MiB:.0f}, model {now['step'] / MiB:.0f} "
            f"({100 * (now['step'] / row['step_peak'] - 1):+.1f}%); fitted "
            f"{new['targets'] / MiB:.0f}, {new['step'] / MiB:.0f}",
            flush=True,
        )
    if json_out is not None:
        json_out.write_text(json.dumps({"calibration": rows, "fitted": fitted}, indent=1))


# ---- main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["table", "recompute", "bounded", "speed", "big", "allocator"],
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--rows", nargs="+", default=[], help="only the table's rows whose names start so"
    )
    parser.add_argument("--budget", default="3GiB")
    parser.add_argument("--big-budget", default="4GiB")
    parser.add_argument("--untiled-limit", default="8GiB")
    parser.add_argument("--speed-sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--speed-iterations", type=int, default=4)
    parser.add_argument("--speed-repeats", type=int, default=2)
    parser.add_argument("--bounded-sizes", type=int, nargs="+", default=[512, 1024, 2048, 3072])
    parser.add_argument("--big-size", type=int, default=4096)
    parser.add_argument("--allocator-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--allocator-iterations", type=int, default=100)
    parser.add_argument("--allocator-rounds", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, every section (the tests' run)"
    )
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--refit", type=Path, help="--calibrate from this file's probes")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(json.loads(args.probe))))
        return 0
    if args.calibrate:
        calibrate(args.json, args.refit)
        return 0
    import torch

    table, recompute = TABLE, RECOMPUTE
    if args.quick:
        table, recompute = QUICK_TABLE, QUICK_RECOMPUTE
        args.bounded_sizes, args.big_size, args.speed_sizes = [64], 128, [64]
        args.speed_iterations, args.speed_repeats = 2, 1
        args.allocator_sizes, args.allocator_iterations, args.allocator_rounds = [64], 3, 1
    if args.rows:
        table = [row for row in table if row[0].startswith(tuple(args.rows))]
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "command": " ".join(sys.argv),
        "tolerance": TOLERANCE,
    }

    def save() -> None:
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="nst-memory-") as folder:
        out = Path(folder)
        if "table" in args.sections:
            result["table"] = []
            section_table(out, table, result["table"], save)
        if "recompute" in args.sections:
            result["recompute"] = section_recompute(out, recompute)
            save()
        if "bounded" in args.sections:
            limit = parse_size(args.untiled_limit)
            done = result.get("table", [])
            result["bounded"] = section_bounded(out, args.budget, limit, done, args.bounded_sizes)
            save()
        if "speed" in args.sections:
            result["speed"] = section_speed(
                args.speed_sizes, args.speed_iterations, args.speed_repeats
            )
            save()
        if "big" in args.sections:
            result["big"] = section_big(out, args.big_budget, args.big_size)
            save()
        if "allocator" in args.sections:
            result["allocator"] = section_allocator(
                out, args.allocator_sizes, args.allocator_iterations, args.allocator_rounds
            )
            save()
    errors = [abs(r["error"]) for r in result.get("table", []) if "error" in r]
    if errors:
        print(f"largest |predicted / measured - 1|: {100 * max(errors):.1f}%")
    own = [abs(r["run_error"]) for r in result.get("table", []) if "run_error" in r]
    if own:
        print(f"largest of the runs' own predictions (run.json): {100 * max(own):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
