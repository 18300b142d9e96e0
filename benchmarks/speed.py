"""Iterations per second of the engine against a loop written the way the study's code works.

    python benchmarks/speed.py [--device cpu|cuda] [--sizes 128 256 ...] [--json FILE]
        [--memory-sizes 128 256 512] [--sweep-size 128] [--skip-sweep] [--skip-streaming]
        [--precision-sizes 128 256 512] [--precision-rounds 3] [--no-peer]

Besides engine against baseline per size, it reports: the floating-point work of
one iteration (counted from the layer shapes, engine/flops.py), achieved TFLOP/s
and, on a GPU it knows, the fraction of the datasheet peak; on CUDA the engine
with CUDA graphs against without, and bf16 against fp32; peak memory per size
(each size in a fresh process: peak RSS on the CPU, peak allocated on CUDA); the
5-cell sweep batched against one cell after another; and what streaming progress
to the dashboard costs against a headless run.

--precision-sizes: the `default` preset per iteration, Adam and L-BFGS, in the precision
"auto" picks here (bf16 on a CPU with AMX) and in fp32, against neural-style-pt (the
quality benchmark's peer: pip package neural-style, fed the same Caffe VGG16 convs, the
same images and size, at its defaults but the optimizer) run in a child process; rounds
interleave every variant, and each figure is the best round with the spread beside it.
A rate is per iteration: timed from the 5th iteration to the last (the difference of
two run lengths), so setup, target encoding and first-call allocations are left out on
both sides. Achieved TFLOP/s against the CPU's peak (engine/flops.py, cpu_peak_tflops).

Both loops run the same backbone (vgg16-caffe: its weights ship offline), the
same size, device, config (reconstruct, Adam, content conv4_1, style conv1_1 ..
conv5_1) and number of iterations, side by side in this one process, in
alternating repeats so that machine load affects both alike.

The baseline does what the study's code did every iteration: it pushes content,
style and canvas through the whole VGG `features` stack (in-place ReLUs, conv
outputs captured by hooks), recomputes the style Grams, and keeps
`requires_grad` on the network's weights, so backward also computes weight
gradients nobody uses. The engine computes targets once, freezes the network
and stops at the deepest layer it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # quality.py: the peer's weights and arguments

from nst_tui.config import Config  # noqa: E402
from nst_tui.engine.accel import cpu_bf16_units  # noqa: E402
from nst_tui.engine.events import Progress  # noqa: E402
from nst_tui.engine.flops import (  # noqa: E402
    achieved_tflops,
    cpu_peak_tflops,
    objective_flops,
    peak_tflops,
)
from nst_tui.engine.losses import content_loss, gram, style_loss, tv_loss  # noqa: E402
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import get_backbone, load_inputs, prepare  # noqa: E402

# The study's pairs, downsized, ship in tests/data (see its SOURCES.md);
# NST_TUI_IMAGES points at other copies of the same file names.
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))


def make_config(size: int, iterations: int, device: str, **changes: object) -> Config:
    return Config.from_dict(
        {
            "content_image": str(IMAGES / "tubingen.jpg"),
            "style_image": str(IMAGES / "starry_night.jpg"),
            "size": size,
            "iterations": iterations,
            "sav_freq": iterations,  # one report at the end: measure the loop, not the recorder
            "backbone": "vgg16-caffe",
            "device": device,
            **changes,
        }
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_rate(cfg: Config) -> float:
    prepared = prepare(cfg)
    sync(prepared.device)
    t0 = time.perf_counter()
    optimize(prepared.objective, prepared.canvases, [lambda event: None])[0]
    sync(prepared.device)
    return cfg.iterations / (time.perf_counter() - t0)


class StudyVGG(nn.Module):
    """The whole VGG16 `features` stack as torchvision lays it out, in-place ReLUs."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        bb = get_backbone(cfg.backbone)
        self.preprocess = bb.make_preprocess()
        layers: list[nn.Module] = []
        self.first_convs: list[nn.Conv2d] = []
        for block in range(5):
            for j, (w, b) in enumerate(bb.block_convs(block)):
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(b)
                layers += [conv, nn.ReLU(inplace=True)]
                if j == 0:
                    self.first_convs.append(conv)
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)  # weights keep requires_grad=True, as in the study

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        captured: list[torch.Tensor] = []
        hooks = [
            c.register_forward_hook(lambda m, i, o: captured.append(o)) for c in self.first_convs
        ]
        self.features(self.preprocess(x))
        for h in hooks:
            h.remove()
        return captured


def baseline_rate(cfg: Config) -> float:
    device = torch.device(cfg.device)
    content, style, _ = load_inputs(cfg, device)
    net = StudyVGG(cfg).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    canvas = torch.rand(content.shape, generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([canvas], lr=cfg.lr)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(cfg.iterations):
        opt.zero_grad()
        c_feats, s_feats, x_feats = net(content), net(style), net(canvas)
        loss = cfg.alpha * sum(
            content_loss(x_feats[i], c_feats[i]).sum() for i in cfg.content_layers
        )
        loss = loss + cfg.beta * sum(
            cfg.style_weights[i] * style_loss(x_feats[i], gram(s_feats[i])).sum()
            for i in cfg.style_layers
        )
        loss = loss + cfg.gamma * tv_loss(canvas).sum()
        loss.backward()
        opt.step()
        with torch.no_grad():
            canvas.clamp_(0, 1)
    sync(device)
    return cfg.iterations / (time.perf_counter() - t0)


def sweep_configs(size: int, iterations: int, device: str) -> list[Config]:
    """The study's first table: content layers 0..4 (noise init, Adam), as 5 cells."""
    cfg = make_config(size, iterations, device)
    return [cfg.replace(content_layers=[layer]) for layer in range(5)]


def sweep_rates(size: int, iterations: int, device: str) -> tuple[float, float]:
    """Cell-iterations per second: the 5 cells as one batch, then one after another."""
    cfgs = sweep_configs(size, iterations, device)
    prepared = prepare(cfgs)
    dev = prepared.device
    sync(dev)
    t0 = time.perf_counter()
    optimize(prepared.objective, prepared.canvases, [lambda event: None] * len(cfgs))
    sync(dev)
    batched = 5 * iterations / (time.perf_counter() - t0)

    seq_time = 0.0
    for layer in range(5):
        cfg = make_config(size, iterations, device).replace(content_layers=[layer])
        prepared = prepare(cfg)
        sync(dev)
        t0 = time.perf_counter()
        optimize(prepared.objective, prepared.canvases, [lambda event: None])[0]
        sync(dev)
        seq_time += time.perf_counter() - t0
    return batched, 5 * iterations / seq_time


def measure_sweep(size: int, device: str, iterations: int, repeats: int) -> dict[str, float]:
    sweep_rates(size, 2, device)  # warm-up
    runs = [sweep_rates(size, iterations, device) for _ in range(repeats)]
    b = statistics.median(r[0] for r in runs)
    s = statistics.median(r[1] for r in runs)
    return {
        "size": size,
        "cells": 5,
        "batched_cell_it_s": b,
        "sequential_cell_it_s": s,
        "ratio": b / s,
    }


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or "cpu"


def flops_row(size: int, device: str, it_s: float, precision: str) -> dict[str, float | None]:
    cfg = make_config(size, 1, device)
    prepared = prepare(cfg)
    flops = objective_flops(prepared.objective, prepared.canvas)
    tflops = achieved_tflops(flops, it_s)
    peak = peak_tflops(device_name(device), precision)
    return {
        "gflop_per_it": flops.total / 1e9,
        "tflop_s": tflops,
        "peak_tflop_s": peak,
        "fraction_of_peak": None if peak is None else tflops / peak,
    }


def scaled_iterations(iterations: int, size: int) -> int:
    """`iterations` at 128 px, fewer for larger canvases (work grows with the pixels), so
    that every size takes a similar time and a GPU session's script stays short."""
    return max(20, round(iterations * (128 / size) ** 2)) if size > 128 else iterations


def measure(size: int, device: str, iterations: int, repeats: int) -> dict[str, object]:
    """Engine against baseline; on CUDA also without graphs and in bf16, side by side."""
    if device.startswith("cuda"):
        iterations = scaled_iterations(iterations, size)
    variants: dict[str, dict[str, object]] = {"engine": {}}
    if device.startswith("cuda"):
        variants["engine_no_graphs"] = {"cuda_graphs": False}
        variants["engine_bf16"] = {"precision": "bf16"}
    warm = make_config(size, WARM_UP_ITERATIONS, device)
    baseline_rate(warm)  # first-call allocations and kernel choices
    for changes in variants.values():
        engine_rate(warm.replace(**changes))
    rates: dict[str, list[float]] = {name: [] for name in [*variants, "baseline"]}
    for _ in range(repeats):
        for name, changes in variants.items():
            rates[name].append(engine_rate(make_config(size, iterations, device, **changes)))
        rates["baseline"].append(baseline_rate(make_config(size, iterations, device)))
    med = {name: statistics.median(r) for name, r in rates.items()}
    row: dict[str, object] = {"size": size, "iterations": iterations}
    row |= {f"{name}_it_s": v for name, v in med.items()}
    row["ratio"] = med["engine"] / med["baseline"]
    tf32 = device.startswith("cuda")
    row |= flops_row(size, device, med["engine"], "tf32" if tf32 else "fp32")
    return row


WARM_UP_ITERATIONS = 6  # past the CUDA graph warm-up (3 plain steps, then the capture)


def _proc_status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def one_size_in_this_process(size: int, device: str, iterations: int) -> dict[str, float]:
    """Run the engine once in this fresh process and report its peak memory during the
    run (not while loading weights: the ONNX import peaks higher than a small run)."""
    cfg = make_config(size, iterations, device)
    engine_rate(make_config(size, 1, device))  # weights loaded, first-call allocations made
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets the peak RSS (VmHWM)
    rss_before = _proc_status_mib("VmRSS")
    it_s = engine_rate(cfg)
    row = {"size": size, "iterations": iterations, "it_s": it_s}
    if cuda:
        row["peak_cuda_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        row["peak_cuda_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    row["rss_before_mib"] = rss_before
    row["peak_rss_mib"] = _proc_status_mib("VmHWM")
    return row


def measure_memory(size: int, device: str, iterations: int) -> dict[str, float]:
    """Each size in a fresh process, so one size's peak does not hide the next's."""
    cmd = [sys.executable, __file__, "--device", device, "--one-size", str(size)]
    cmd += ["--iterations", str(iterations)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"size": size, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def app_rate(cfg: Config, out: Path) -> float:
    """Loop it/s of a run started with ctrl+r in the real dashboard, headless (Textual's
    run_test): its UI thread draws every message while the worker optimizes."""
    import asyncio

    from nst_tui.tui.app import NSTApp

    async def go() -> float:
        app = NSTApp(cfg, preset_name="bench", outputs=out, warm_up=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("ctrl+r")
            while not app.session.jobs or app.active is not None:
                # Not pilot.pause(): it messages every widget and waits for them all,
                # UI work a real session does not have.
                await asyncio.sleep(0.05)
            folder = app.session.jobs[1].record.folder
        assert folder is not None, "the dashboard run wrote no folder"
        return json.loads((folder / "run.json").read_text())["it_per_s"]

    return asyncio.run(go())


STREAMING_MODES = ("headless", "thread", "relay", "dashboard")


def run_headless(cfg: Config, out: Path, listeners: list | None = None) -> float:
    """Loop it/s of one run, as `nst-tui run` runs it (a job of one cell)."""
    from nst_tui.job.plan import single
    from nst_tui.job.run import run_job

    job = single(cfg, "bench")
    return run_job(job, out_root=out, listeners=listeners or []).finished.it_per_s


def in_a_thread(cfg: Config, out: Path) -> float:
    """Loop it/s of a headless run in a worker thread, as the dashboard runs it."""
    rates: list[float] = []
    worker = threading.Thread(target=lambda: rates.append(run_headless(cfg, out)))
    worker.start()
    worker.join()
    if not rates:
        raise RuntimeError("the threaded run raised (its traceback is above)")
    return rates[0]


def streaming_rate_in_this_process(mode: str, device: str, size: int, iterations: int) -> float:
    """Loop it/s of one run in a fresh process: headless (the recorder only, on the main
    thread, as `nst-tui run`), the same in a worker thread, headless with the dashboard's
    relay posting into a list, or in the dashboard itself (its run in a worker thread,
    its UI on the main thread, as `nst-tui`).

    A fresh process each, and the warm-up run on the thread the measured one uses:
    once the main thread has run a parallel torch op, libgomp keeps that thread's team
    alive, and every other thread's parallel regions then wait passively (the process
    has more OpenMP threads than cores): 2x slower at 32 px, 17% at 128 px on 2 cores,
    measured. The dashboard never runs torch on its UI thread, so it does not pay that.
    """
    import tempfile

    from nst_tui.job.plan import single
    from nst_tui.tui.relay import JobRelay

    cfg = make_config(size, iterations, device, sav_freq=10)
    warm = cfg.replace(iterations=WARM_UP_ITERATIONS)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if mode in ("thread", "dashboard"):
            in_a_thread(warm, out)
            return in_a_thread(cfg, out) if mode == "thread" else app_rate(cfg, out)
        run_headless(warm, out)
        listeners = [JobRelay([].append, 1, single(cfg, "bench"))] if mode == "relay" else []
        return run_headless(cfg, out, listeners)


def streaming_rate(mode: str, device: str, size: int, iterations: int) -> float:
    cmd = [sys.executable, __file__, "--device", device, "--streaming-one", mode]
    cmd += ["--streaming-size", str(size), "--streaming-iterations", str(iterations)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"streaming {mode}: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def measure_streaming(device: str, size: int, iterations: int, repeats: int) -> dict[str, object]:
    """`repeats` rounds of every mode, each run in a fresh process; each round starts
    with a different mode, so drift falls on every mode alike."""
    runs = []
    for k in range(repeats):
        order = STREAMING_MODES[k % 4 :] + STREAMING_MODES[: k % 4]
        runs.append({m: streaming_rate(m, device, size, iterations) for m in order})
    med = {m: statistics.median(r[m] for r in runs) for m in STREAMING_MODES}
    return {
        "size": size,
        "iterations": iterations,
        "rounds": len(runs),
        **{f"{m}_it_s": v for m, v in med.items()},
        "thread_cost": 1 - med["thread"] / med["headless"],
        "relay_cost": 1 - med["relay"] / med["headless"],
        "dashboard_cost": 1 - med["dashboard"] / med["headless"],
        # Against the same run in a worker thread: what drawing the dashboard costs.
        "dashboard_cost_vs_thread": 1 - med["dashboard"] / med["thread"],
        "per_round_dashboard_cost": [1 - r["dashboard"] / r["headless"] for r in runs],
    }


# ---- precision and the peer, per iteration ------------------------------------------------

SKIP = 5  # iterations left out at the start of every timed run (both sides)
PRECISION_ITERATIONS = {128: 60, 256: 30, 512: 14}


def default_config(size: int, iterations: int, device: str, **changes: object) -> Config:
    """The `default` preset on tubingen + starry night, the stop rule off (equal work)."""
    from nst_tui import presets

    return presets.load("default").config.replace(
        content_image=str(IMAGES / "tubingen.jpg"),
        style_image=str(IMAGES / "starry_night.jpg"),
        size=size,
        iterations=iterations,
        sav_freq=SKIP,
        stop_change=0.0,
        device=device,
        **changes,
    )


def engine_step_rate(cfg: Config) -> tuple[float, str]:
    """it/s from the SKIP-th iteration's report to the last's (a report is handed out as
    soon as its step is done on a CPU), and the accel the run used."""
    prepared = prepare(cfg)
    stamps: list[tuple[int, float]] = []

    def listen(event: object) -> None:
        if isinstance(event, Progress):
            sync(prepared.device)
            stamps.append((event.iteration, time.perf_counter()))

    optimize(prepared.objective, prepared.canvases, [listen])
    (i0, t0), (i1, t1) = stamps[0], stamps[-1]
    return (i1 - i0) / (t1 - t0), prepared.objective.accel.describe()


class _PeerStop(Exception):
    pass


def peer_speed_child(spec: dict[str, object]) -> None:
    """In a fresh process: neural-style-pt's main() twice (a warm-up of a few evaluations,
    then `n`), each evaluation timed; prints it/s from evaluation SKIP to the last."""
    sys.argv = ["neural-style", *spec["args"]]  # type: ignore[misc]
    from neural_style import neural_style as ns  # parses sys.argv

    build = ns.setup_optimizer
    stamps: list[float] = []
    limit = [0]

    def setup_optimizer(img: torch.nn.Parameter) -> tuple[object, int]:
        optimizer, loop_val = build(img)
        step = optimizer.step

        def timed_step(closure):  # type: ignore[no-untyped-def]
            def evaluate() -> torch.Tensor:
                loss = closure()
                stamps.append(time.perf_counter())
                if len(stamps) >= limit[0]:
                    raise _PeerStop
                return loss

            return step(evaluate)

        optimizer.step = timed_step
        return optimizer, loop_val

    ns.setup_optimizer = setup_optimizer
    for n in (3, int(spec["n"])):  # type: ignore[call-overload]
        stamps.clear()
        limit[0] = n
        with contextlib.suppress(_PeerStop):
            ns.main()
    print((len(stamps) - SKIP) / (stamps[-1] - stamps[SKIP - 1]))


def peer_step_rate(size: int, optimizer: str, n: int, model: Path, device: str) -> float:
    from quality import image_spec, peer_args

    pair = (image_spec("tubingen"), image_spec("starry_night"))
    args = [*peer_args(pair, size, model, device), "-optimizer", optimizer]
    spec = json.dumps({"args": args, "n": n})
    cmd = [sys.executable, __file__, "--peer-speed-child", spec]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peer: {done.stderr.strip()[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def cpu_facts() -> dict[str, object]:
    """What the CPU peaks are computed from: threads torch uses, nominal clock, units."""
    ghz = None
    with contextlib.suppress(OSError, ValueError, StopIteration):
        line = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        )  # fmt: skip
        ghz = float(line.partition(":")[2]) / 1e3
    flags: set[str] = set()
    with contextlib.suppress(OSError, StopIteration):
        line = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )  # fmt: skip
        flags = set(line.partition(":")[2].split())
    units = {u for u in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2") if u in flags}
    return {"cores": torch.get_num_threads(), "ghz": ghz, "flags": sorted(units)}


def measure_precision(
    size: int, device: str, rounds: int, peer: bool, model: Path | None, bf16: bool = False
) -> dict[str, object]:
    """The default preset per iteration: auto and fp32, Adam and L-BFGS, and the peer's
    Adam and L-BFGS, interleaved over `rounds` (each round in a rotated order). `bf16`:
    bf16 forced too, for a device where auto picks fp32 (is bf16 faster there after all?)."""
    n = PRECISION_ITERATIONS.get(size, max(SKIP + 8, round(60 * (128 / size) ** 2)))
    lbfgs = {"optimizer": "lbfgs", "lr": 1.0}
    engine: dict[str, dict[str, object]] = {
        "auto_adam": {},
        "fp32_adam": {"precision": "fp32"},
        "auto_lbfgs": lbfgs,
        "fp32_lbfgs": {**lbfgs, "precision": "fp32"},
    }
    if bf16:
        engine.update(bf16_adam={"precision": "bf16"}, bf16_lbfgs={**lbfgs, "precision": "bf16"})
    names = [*engine, *(["peer_adam", "peer_lbfgs"] if peer else [])]
    for changes in engine.values():  # warm-up: weights, first-call allocations
        engine_step_rate(default_config(size, SKIP + 2, device, **changes))
    rates: dict[str, list[float]] = {name: [] for name in names}
    accel: dict[str, str] = {}
    for k in range(rounds):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            if name.startswith("peer"):
                assert model is not None
                rates[name].append(peer_step_rate(size, name[5:], n, model, device))
            else:
                rate, accel[name] = engine_step_rate(
                    default_config(size, n, device, **engine[name])
                )
                rates[name].append(rate)
            print(f"   {size} px round {k + 1} {name}: {rates[name][-1]:.2f} it/s", flush=True)
    prepared = prepare(default_config(size, 1, device))
    gflop = objective_flops(prepared.objective, prepared.canvas).total / 1e9
    facts = cpu_facts() if device == "cpu" else {}
    row: dict[str, object] = {"size": size, "iterations": n, "rounds": rounds, "accel": accel}
    for name, r in rates.items():
        row[f"{name}_it_s"] = max(r)
        row[f"{name}_spread"] = [min(r), max(r)]
        fp32 = name.startswith(("fp32", "peer"))
        precision = "fp32" if fp32 else prepared.objective.accel.precision
        if name.startswith("bf16"):
            precision = "bf16"
        tflop_s = gflop * max(r) / 1e3
        row[f"{name}_tflop_s"] = tflop_s
        if facts.get("ghz"):
            flags = set(facts["flags"])  # type: ignore[arg-type]
            peak = cpu_peak_tflops(precision, int(facts["cores"]), float(facts["ghz"]), flags)  # type: ignore[arg-type]
            row[f"{name}_of_peak"] = None if peak is None else tflop_s / peak
    best = {name: max(r) for name, r in rates.items()}
    row["gflop_per_it"] = gflop
    row["auto_over_fp32_adam"] = best["auto_adam"] / best["fp32_adam"]
    row["auto_over_fp32_lbfgs"] = best["auto_lbfgs"] / best["fp32_lbfgs"]
    if bf16:
        row["bf16_over_fp32_adam"] = best["bf16_adam"] / best["fp32_adam"]
        row["bf16_over_fp32_lbfgs"] = best["bf16_lbfgs"] / best["fp32_lbfgs"]
    if peer:
        for opt in ("adam", "lbfgs"):
            row[f"fp32_over_peer_{opt}"] = best[f"fp32_{opt}"] / best[f"peer_{opt}"]
            row[f"auto_over_peer_{opt}"] = best[f"auto_{opt}"] / best[f"peer_{opt}"]
            # The same within each round (both in that round's machine load).
            row[f"fp32_over_peer_{opt}_per_round"] = [
                a / b for a, b in zip(rates[f"fp32_{opt}"], rates[f"peer_{opt}"], strict=True)
            ]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="*", help="none: skip engine vs baseline")
    parser.add_argument("--iterations", type=int, help="per measurement (default by device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-sizes", type=int, nargs="*", help="peak memory per size")
    parser.add_argument("--sweep-size", type=int, default=128, help="the 5-cell sweep's size")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-streaming", action="store_true")
    parser.add_argument("--streaming-size", type=int, default=128)
    parser.add_argument("--streaming-iterations", type=int, help="default: max(40, --iterations)")
    parser.add_argument(
        "--precision-sizes", type=int, nargs="*", default=[],
        help="the default preset per iteration: auto against fp32, Adam and L-BFGS, and "
        "against neural-style-pt",
    )  # fmt: skip
    parser.add_argument("--precision-rounds", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="leave neural-style-pt out")
    parser.add_argument(
        "--bf16", action="store_true", help="with --precision-sizes: bf16 forced too"
    )
    parser.add_argument("--peer-speed-child", help=argparse.SUPPRESS)
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--streaming-one", choices=STREAMING_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    iterations = args.iterations or (200 if cuda else 10)
    torch.set_grad_enabled(True)
    if args.peer_speed_child:
        peer_speed_child(json.loads(args.peer_speed_child))
        return 0
    if args.streaming_one:
        rate = streaming_rate_in_this_process(
            args.streaming_one,
            args.device,
            args.streaming_size,
            args.streaming_iterations or max(iterations, 40),
        )
        print(rate)
        return 0
    if args.one_size:
        print(json.dumps(one_size_in_this_process(args.one_size, args.device, iterations)))
        return 0
    sizes = args.sizes
    if sizes is None:
        sizes = [128, 256, 512, 1024] if cuda else [128, 256]
    memory_sizes = args.memory_sizes
    if memory_sizes is None:
        memory_sizes = [128, 256, 512, 1024] if cuda else [128, 256, 512]

    result: dict[str, object] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device_name(args.device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "iterations": iterations,
        "repeats": args.repeats,
        "backbone": "vgg16-caffe",
    }
    if args.precision_sizes:
        result["precision"] = precision_section(args)
        if args.sizes is None and args.memory_sizes is None:  # asked for this alone
            write_result(args.json, result)
            return 0
    print(f"{result['device']}, {iterations} iterations x {args.repeats} repeats (median)")
    rows = []
    for size in sizes:
        row = measure(size, args.device, iterations, args.repeats)
        rows.append(row)
        extra = "".join(
            f"  {k[:-5]} {row[k]:.1f}"
            for k in ("engine_no_graphs_it_s", "engine_bf16_it_s")
            if k in row
        )
        peak = row["fraction_of_peak"]
        print(
            f"{size:>5} px  engine {row['engine_it_s']:.2f} it/s  baseline "
            f"{row['baseline_it_s']:.2f} it/s  {row['ratio']:.2f}x  "
            f"{row['gflop_per_it']:.2f} GFLOP/it  {row['tflop_s']:.3f} TFLOP/s"
            + ("" if peak is None else f" ({peak:.1%} of peak)")
            + extra,
            flush=True,
        )
    result["results"] = rows
    if not args.skip_sweep:
        sweep = measure_sweep(args.sweep_size, args.device, iterations, args.repeats)
        result["sweep"] = sweep
        print(
            f"5-cell sweep at {sweep['size']} px: batched "
            f"{sweep['batched_cell_it_s']:.2f} cell-it/s, one after another "
            f"{sweep['sequential_cell_it_s']:.2f}, {sweep['ratio']:.2f}x",
            flush=True,
        )
    if not args.skip_streaming:
        streaming = measure_streaming(
            args.device,
            args.streaming_size,
            args.streaming_iterations or max(iterations, 40),
            args.repeats,
        )
        result["streaming"] = streaming
        print(
            f"streaming at {streaming['size']} px: headless "
            f"{streaming['headless_it_s']:.2f} it/s, in a worker thread "
            f"{streaming['thread_it_s']:.2f} ({streaming['thread_cost']:.1%}), relay only "
            f"{streaming['relay_it_s']:.2f} ({streaming['relay_cost']:.1%}), in the dashboard "
            f"{streaming['dashboard_it_s']:.2f} ({streaming['dashboard_cost']:.1%})",
            flush=True,
        )
    memory = []
    for size in memory_sizes:
        row = measure_memory(size, args.device, scaled_iterations(iterations, size) if cuda else 3)
        memory.append(row)
        print(f"memory at {size} px: {row}", flush=True)
    result["memory"] = memory
    write_result(args.json, result)
    return 0


def write_result(path: Path | None, result: dict[str, object]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")


def precision_section(args: argparse.Namespace) -> dict[str, object]:
    """--precision-sizes: print and return the rows (see measure_precision)."""
    import importlib.util
    import tempfile

    peer = not args.no_peer and importlib.util.find_spec("neural_style") is not None
    if not args.no_peer and not peer:
        print("neural-style is not installed: the peer is left out", flush=True)
    units = sorted(cpu_bf16_units()) if args.device == "cpu" else []
    out: dict[str, object] = {"cpu": cpu_facts() if args.device == "cpu" else {}, "rows": []}
    print(f"precision: the default preset per iteration; bf16 units here: {units or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        from quality import export_peer_weights

        model = export_peer_weights(Path(tmp)) if peer else None
        for size in args.precision_sizes:
            row = measure_precision(
                size, args.device, args.precision_rounds, peer, model, args.bf16
            )
            out["rows"].append(row)  # type: ignore[attr-defined]
            line = (
                f"{size:>5} px  Adam: auto {row['auto_adam_it_s']:.2f} fp32 "
                f"{row['fp32_adam_it_s']:.2f} it/s ({row['auto_over_fp32_adam']:.2f}x)  "
                f"L-BFGS: auto {row['auto_lbfgs_it_s']:.2f} fp32 {row['fp32_lbfgs_it_s']:.2f} "
                f"({row['auto_over_fp32_lbfgs']:.2f}x)"
            )
            if args.bf16:
                line += (
                    f"  bf16 forced: Adam {row['bf16_over_fp32_adam']:.2f}x, L-BFGS "
                    f"{row['bf16_over_fp32_lbfgs']:.2f}x fp32"
                )
            if peer:
                line += (
                    f"  peer Adam {row['peer_adam_it_s']:.2f} (fp32 "
                    f"{row['fp32_over_peer_adam']:.2f}x) L-BFGS {row['peer_lbfgs_it_s']:.2f} "
                    f"(fp32 {row['fp32_over_peer_lbfgs']:.2f}x)"
                )
            print(line, flush=True)
            write_result(args.json, {"precision": out})
    return out


if __name__ == "__main__":
    raise SystemExit(main())
