"""Choosing the stop_change rule: where would it stop, and what would the picture lose?

    python benchmarks/convergence.py [--sizes 128 256] [--pairs tubingen:starry_night ...]
        [--optimizers adam lbfgs] [--cap 2500] [--windows 25 50 100]
        [--thresholds 0.002 0.005 ...] [--recipe default] [--json FILE]

Each (size, pair, optimizer) runs the recipe (a preset; L-BFGS at lr 1, as
quality.py's default-lbfgs) to the cap with the rule off, keeping the canvas shown and
the total loss at every iteration. Afterwards, for every window length W and threshold T,
the rule of engine/converge.py is replayed on those losses: the run would have stopped
at the first window end where the mean loss of the last W iterations is less than a
fraction T below that of the W before. The picture there is scored by
benchmarks/judge.py and compared with the picture at the cap, and with the mean of the
full run's scores over its last fifth (steadier: see below): the rule is good when the
stopped picture's content and style distances are within 1% of the full run's.

The judged distances of a run that has converged still move from iteration to
iteration (Adam at a fixed lr keeps jittering); `noise` reports their spread over the
last fifth of the run (standard deviation over mean), the floor below which no
comparison of two single pictures means much. `pixel_changes` keeps the measure first
tried for the rule (how much the mean canvas of a window moved, levels of 255): it never
settles at a fixed lr. Writes a JSON (default benchmarks/results/convergence-DEVICE.json)
and a sheet of the stopped pictures beside the full runs' (same stem, .jpg).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from judge import Judge  # noqa: E402
from quality import (  # noqa: E402
    DEFAULT_PAIRS,
    as_tensor,
    fields_config,
    load_pair,
    parse_pair,
    write_json,
)

from nst_tui.config import Config  # noqa: E402
from nst_tui.engine.events import Event, Frame, Progress  # noqa: E402
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import prepare  # noqa: E402
from nst_tui.sheet import render_sheet  # noqa: E402

THRESHOLDS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
WINDOWS = (25, 50, 100)
TOLERANCE = 0.01  # the stopped picture's distances within 1% of the full run's
PICK = (50, 0.005)  # the rule drawn on the sheet: the default preset's


def run_frames(cfg: Config) -> tuple[np.ndarray, list[float], float, dict[str, Any]]:
    """Every iteration's shown canvas (N, H, W, 3 uint8) and total loss, the loop's wall
    time, and the run's accel (precision and why)."""
    prepared = prepare(cfg)
    frames: list[np.ndarray] = []
    losses: list[float] = []

    def listen(event: Event) -> None:
        if isinstance(event, Frame):
            frames.append(event.image)
        elif isinstance(event, Progress):
            losses.append(event.losses["total"])

    accel = prepared.objective.accel
    info = {"accel": accel.describe(), "precision": accel.precision}
    t0 = time.perf_counter()
    optimize(prepared.objective, prepared.canvases, [listen])
    wall = time.perf_counter() - t0
    del prepared
    return np.stack(frames), losses, wall, info


def window_gains(losses: list[float], window: int) -> list[tuple[int, float]]:
    """(end iteration, gain) for every window after the first: how much lower its mean
    loss is than the previous window's, as a fraction of it (engine/converge.py)."""
    out = []
    previous = None
    for k in range(len(losses) // window):
        mean = statistics.fmean(losses[k * window : (k + 1) * window])
        if previous is not None:
            out.append(((k + 1) * window, (previous - mean) / abs(previous)))
        previous = mean
    return out


def window_changes(frames: np.ndarray, window: int) -> list[tuple[int, float]]:
    """(end iteration, change in levels of 255) for every window after the first."""
    out = []
    previous = None
    for k in range(len(frames) // window):
        mean = frames[k * window : (k + 1) * window].astype(np.float64).mean(axis=0)
        if previous is not None:
            out.append(((k + 1) * window, float(np.abs(mean - previous).mean())))
        previous = mean
    return out


def stop_at(gains: list[tuple[int, float]], threshold: float, cap: int) -> int:
    return next((end for end, gain in gains if gain < threshold), cap)


def rel(a: float, b: float) -> float:
    return (a - b) / b if b else math.inf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS))
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    parser.add_argument("--cap", type=int, default=2500)
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--recipe", default="default", help="a preset")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--judge-every", type=int, default=25)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    json_path = args.json or ROOT / "benchmarks" / "results" / f"convergence-{args.device}.json"
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "recipe": args.recipe,
        "set": extra,
        "cap": args.cap,
        "windows": args.windows,
        "thresholds": args.thresholds,
        "tolerance": TOLERANCE,
        "runs": [],
    }
    sheet_rows: list[list[Image.Image | None]] = []
    sheet_labels: list[str] = []
    for size in args.sizes:
        for pair in args.pairs:
            images = parse_pair(pair)
            content, style = load_pair(images, size)
            judge = Judge(content, style)
            for optimizer in args.optimizers:
                fields: dict[str, Any] = {"preset": args.recipe, **extra}
                if optimizer == "lbfgs":
                    fields.update(optimizer="lbfgs", lr=1.0)
                cfg = fields_config(fields).replace(
                    content_image=images[0], style_image=images[1], size=size,
                    iterations=args.cap, sav_freq=1, stop_change=0.0, device=args.device,
                )  # fmt: skip
                frames, losses, wall, info = run_frames(cfg)
                n = len(frames)
                judged_at = sorted({*range(args.judge_every, n + 1, args.judge_every), n})
                scores = {i: judge(as_tensor(frames[i - 1])) for i in judged_at}
                full = scores[n]
                tail = [i for i in judged_at if i > n - n // 5]
                keys = ("content", "style", "artifacts")
                late = {k: statistics.fmean([scores[i][k] for i in tail]) for k in keys}
                noise = {k: statistics.pstdev([scores[i][k] for i in tail]) / late[k] for k in keys}
                run: dict[str, Any] = {
                    "size": size, "pair": pair, "optimizer": optimizer, **info,
                    "iterations": n, "wall_s": round(wall, 2), "it_per_s": round(n / wall, 2),
                    "full": full, "late_mean": late, "noise": noise,
                    "scores": {str(i): s for i, s in scores.items()},
                    "losses": losses,
                    "gains": {str(w): window_gains(losses, w) for w in args.windows},
                    "pixel_changes": {str(w): window_changes(frames, w) for w in args.windows},
                    "rules": [],
                }  # fmt: skip
                print(
                    f"{size} px {pair} {optimizer} ({info['precision']}): {n} it in {wall:.0f} s, "
                    f"full content {full['content']:.3f} style {full['style']:.3f}; noise over "
                    f"the last fifth: content {noise['content']:.1%} style {noise['style']:.1%}",
                    flush=True,
                )
                for w in args.windows:
                    gains = run["gains"][str(w)]
                    for t in args.thresholds:
                        at = stop_at(gains, t, n)
                        s = scores.get(at) or judge(as_tensor(frames[at - 1]))
                        row = {
                            "window": w, "threshold": t, "stop": at,
                            "content": s["content"], "style": s["style"],
                            "artifacts": s["artifacts"],
                            "d_content": rel(s["content"], full["content"]),
                            "d_style": rel(s["style"], full["style"]),
                            "d_artifacts": rel(s["artifacts"], full["artifacts"]),
                            "d_content_late": rel(s["content"], late["content"]),
                            "d_style_late": rel(s["style"], late["style"]),
                        }  # fmt: skip
                        run["rules"].append(row)
                        print(
                            f"   W {w:>3} T {t:<6g} stop {at:>5}  vs the last picture: content "
                            f"{row['d_content']:+.2%} style {row['d_style']:+.2%} artifacts "
                            f"{row['d_artifacts']:+.2%}; vs the late mean: content "
                            f"{row['d_content_late']:+.2%} style {row['d_style_late']:+.2%}",
                            flush=True,
                        )
                result["runs"].append(run)
                write_json(json_path, result)
                for w, t in [PICK]:
                    at = stop_at(run["gains"].get(str(w), []), t, n)
                    stopped, last = frames[at - 1], frames[-1]
                    sheet_rows.append([Image.fromarray(stopped), Image.fromarray(last)])
                    sheet_labels.append(f"{pair} {size} {optimizer}: {at} | {n}")
                del frames
    sheet = json_path.with_suffix(".jpg")
    columns = [f"stopped (W {PICK[0]}, T {PICK[1]:g})", "full run"]
    title = f"{args.recipe}: stopped against full"
    render_sheet(sheet_rows, sheet_labels, columns, title).save(sheet, "JPEG", quality=90)
    print(f"wrote {json_path} and {sheet}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
