"""Iterations per second of exact tiled gradients against the untiled step, side by side.

    python benchmarks/tiles_speed.py [--device cpu|cuda] [--sizes 512 1024]
        [--tiles 256 512] [--iterations 3] [--repeats 2] [--precision fp32] [--json FILE]

For each size, one prepared run (vgg16-caffe, tubingen + starry_night, reconstruct, Adam,
content conv4_1, style conv1_1 .. conv5_1: margins of 128 px) is stepped untiled and in
each tile size below the canvas's long edge, in alternating repeats so that machine load
falls on all alike (after one warm-up step of each); the median it/s of each. Also per
tile size: how the canvas is cut, how many pixels a pass computes against the canvas's
(the margins' cost), and at the start the largest difference of the tiled loss terms
and canvas gradient from the untiled ones, relative to the largest untiled value
(exactness at that size). On CUDA the untiled step may replay a CUDA graph (the
engine's default); a tiled one never does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_tui.config import Config  # noqa: E402
from nst_tui.engine import accel as acc  # noqa: E402
from nst_tui.engine.objective import Objective  # noqa: E402
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import prepare  # noqa: E402

IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))


def make_config(size: int, iterations: int, device: str, precision: str) -> Config:
    return Config.from_dict(
        {
            "content_image": str(IMAGES / "tubingen.jpg"),
            "style_image": str(IMAGES / "starry_night.jpg"),
            "size": size,
            "iterations": iterations,
            "sav_freq": iterations,  # one report at the end: measure the loop
            "backbone": "vgg16-caffe",
            "device": device,
            "precision": precision,
            "tile": 0,
        }
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(objective: Objective, canvas: torch.Tensor) -> float:
    """it/s of `iterations` Adam steps from `canvas` (a copy is stepped)."""
    start = canvas.detach().clone().requires_grad_(True)
    sync(start.device)
    t0 = time.perf_counter()
    (finished,) = optimize(objective, [start], [lambda event: None])
    sync(start.device)
    assert finished.status == "finished", finished.reason
    return finished.iterations_done / (time.perf_counter() - t0)


def terms_and_grad(objective: Objective, canvas: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = canvas.detach().clone().requires_grad_(True)
    terms = objective(x)
    terms[:, 0].sum().backward()
    assert x.grad is not None
    return terms.detach(), x.grad


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def measure(
    size: int, tiles: list[int], device: str, iterations: int, repeats: int, precision: str
) -> list[dict[str, object]]:
    cfg = make_config(size, iterations, device, precision)
    prepared = prepare(cfg)
    base, canvas = prepared.objective, prepared.canvas
    accel = acc.choose(cfg, prepared.device)  # the untiled accel (CUDA graphs where on)
    h, w = canvas.shape[-2:]
    chosen = [0, *[t for t in tiles if t < max(h, w)]]
    objectives = {t: Objective(base.extractor, accel, base.cells, t) for t in chosen}
    want_terms, want_grad = terms_and_grad(objectives[0], canvas)
    rows: dict[int, dict[str, object]] = {}
    for t, objective in objectives.items():
        row: dict[str, object] = {"size": size, "height": h, "width": w, "tile": t, "runs": []}
        if t:
            plan = objective.plan(canvas)
            got_terms, got_grad = terms_and_grad(objective, canvas)
            row.update(
                tiles=f"{len(plan.rows)}x{len(plan.cols)}",
                margin_px=plan.margin,
                largest_window=list(plan.largest_window),
                statistics_pixels_ratio=round(plan.statistics_pixels / (h * w), 3),
                computed_pixels_ratio=round(plan.computed_pixels / (h * w), 3),
                loss_rel_error=relative(got_terms, want_terms),
                grad_rel_error=relative(got_grad, want_grad),
            )
        rows[t] = row
    load = round(os.getloadavg()[0], 2)
    for row in rows.values():
        row["load_avg_1min_before"] = load
    # Warm up, one step of each: first-call packing, the allocator, cuDNN's choice per shape.
    once = [dataclasses.replace(c, cfg=c.cfg.replace(iterations=1)) for c in base.cells]
    for t in chosen:
        step_rate(Objective(base.extractor, accel, once, t), canvas)
    for k in range(repeats):
        order = chosen if k % 2 == 0 else chosen[::-1]
        for t in order:
            runs = rows[t]["runs"]
            assert isinstance(runs, list)
            runs.append(step_rate(objectives[t], canvas))
    load = round(os.getloadavg()[0], 2)  # the machine's: other work slows every run alike
    for t, row in rows.items():
        row["load_avg_1min_after"] = load
        runs = row["runs"]
        assert isinstance(runs, list)
        row["it_s"] = statistics.median(runs)
        row["accel"] = objectives[t].accel.describe()
    untiled = rows[0]["it_s"]
    assert isinstance(untiled, float)
    for row in rows.values():
        it_s = row["it_s"]
        assert isinstance(it_s, float)
        row["untiled_over_tiled"] = round(untiled / it_s, 3)
    return list(rows.values())


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: list[dict[str, object]] = []
    for size in args.sizes:
        for row in measure(
            size, args.tiles, args.device, args.iterations, args.repeats, args.precision
        ):
            results.append(row)
            extra = ""
            if row["tile"]:
                extra = (
                    f"  {row['tiles']} tiles, {row['computed_pixels_ratio']}x pixels, "
                    f"grad rel err {row['grad_rel_error']:.1e}"
                )
            print(
                f"{size} px  tile {row['tile']:>4}  {row['it_s']:.3f} it/s  "
                f"(untiled {row['untiled_over_tiled']}x as fast){extra}",
                flush=True,
            )
        if args.json:  # after each size: what was measured survives a later one's end
            write(args, results)
    return 0


def write(args: argparse.Namespace, results: list[dict[str, object]]) -> None:
    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": args.device,
        "device_name": (
            torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_name()
        ),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "iterations": args.iterations,
        "repeats": args.repeats,
        "precision": args.precision,
        "command": " ".join(["python", "benchmarks/tiles_speed.py", *sys.argv[1:]]),
        "results": results,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
