"""What real pixels cost the dashboard against half blocks: the UI thread's time per
preview update, the encoder thread's per picture, and the run's it/s, side by side.

    python benchmarks/pixels.py [--size 128] [--iterations 150] [--sav-freq 5]
        [--rounds 3] [--json FILE]
    python benchmarks/pixels.py --ui-cost [--rounds 3] [--json FILE]  # per update, alone
    python benchmarks/pixels.py --open-4096 [--json FILE]   # a 4096 px final.png, viewed

Each run is started with ctrl+r in the real dashboard (Textual headless, 160x48 cells)
in a fresh process, once drawing sixel (forced, 9x18-pixel cells: what xterm -fs 9 has)
and once half blocks, in alternating order, `--rounds` times. Headless, Textual still
composes every frame, so every picture is encoded and written (to nowhere) as in a
terminal. Reported per mode, median over rounds: it/s (run.json), the UI thread's CPU
time per canvas update (its whole CPU time during the run over the updates the canvas
got), and for sixel the encoder thread's CPU time per picture and how many it encoded.

`--open-4096` opens the viewer on a run folder whose final.png is 4096x4096 and reports
the time until the first picture is drawn, at fit and at 1:1, and the longest the UI
thread's event loop went without running (a 5 ms timer's largest gap).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))
MODES = ("sixel", "blocks")
GAP_S = 0.1  # between two canvas updates in --ui-cost
SIZE = (160, 48)


def one_run(mode: str, size: int, iterations: int, sav_freq: int) -> dict[str, float]:
    """A dashboard run in this (fresh) process; its figures."""
    from nst_tui.config import Config
    from nst_tui.tui import graphics

    if mode == "sixel":
        graphics.use(graphics.Graphics("sixel", "sixel (benchmark)", (9, 18), None))
    from nst_tui.tui.app import NSTApp
    from nst_tui.tui.widgets.pixels import PixelView

    updates = {"n": 0}
    watch = PixelView.watch_image

    def counted(self: PixelView, image: object) -> None:
        if self.id == "canvas":
            updates["n"] += 1
        watch(self, image)  # type: ignore[arg-type]

    PixelView.watch_image = counted  # type: ignore[method-assign]
    cfg = Config.from_dict(
        {
            "content_image": str(IMAGES / "tubingen.jpg"),
            "style_image": str(IMAGES / "starry_night.jpg"),
            "size": size,
            "iterations": iterations,
            "sav_freq": sav_freq,
            "backbone": "vgg16-caffe",
            "device": "cpu",
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        warm = threading.Thread(target=_headless, args=(cfg.replace(iterations=6), out))
        warm.start()  # weights loaded, first-call allocations made, on a worker thread
        warm.join()

        async def go() -> dict[str, float]:
            app = NSTApp(cfg, preset_name="bench", outputs=out, warm_up=False)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.5)  # thumbnails read
                updates["n"] = 0
                ui0 = time.thread_time()
                await pilot.press("ctrl+r")
                while not app.session.jobs or app.active is not None:
                    await asyncio.sleep(0.05)  # not pilot.pause(): no extra UI work
                ui = time.thread_time() - ui0
                canvas = app.query_one("#canvas", PixelView)
                folder = app.session.jobs[1].record.folder
                assert folder is not None, "the run wrote no folder"
                it_s = json.loads((folder / "run.json").read_text())["it_per_s"]
            return {
                "it_s": it_s,
                "updates": updates["n"],
                "ui_cpu_s": ui,
                "ui_ms_per_update": 1e3 * ui / max(1, updates["n"]),
                "encodings": canvas.encodings,
                "encode_ms": 1e3 * canvas.spent / max(1, canvas.encodings),
            }

        return asyncio.run(go())


def _headless(cfg: object, out: Path) -> None:
    from nst_tui.job.plan import single
    from nst_tui.job.run import run_job

    run_job(single(cfg, "warm"), out_root=out)  # type: ignore[arg-type]


def run_in_fresh_process(mode: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--one", mode, "--size", str(args.size)]
    cmd += ["--iterations", str(args.iterations), "--sav-freq", str(args.sav_freq)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def side_by_side(args: argparse.Namespace) -> dict[str, object]:
    rounds = []
    for k in range(args.rounds):
        order = MODES if k % 2 == 0 else MODES[::-1]
        rounds.append({m: run_in_fresh_process(m, args) for m in order})
        print(json.dumps(rounds[-1]), flush=True)
    med = {
        m: {key: statistics.median(r[m][key] for r in rounds) for key in rounds[0][m]}
        for m in MODES
    }
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": os.getloadavg(),
        "terminal": f"{SIZE[0]}x{SIZE[1]} cells, headless (Textual run_test)",
        "size": args.size,
        "iterations": args.iterations,
        "sav_freq": args.sav_freq,
        "rounds": rounds,
        "median": med,
        "it_s_sixel_vs_blocks": med["sixel"]["it_s"] / med["blocks"]["it_s"] - 1,
        "per_round_it_s_sixel_vs_blocks": [
            r["sixel"]["it_s"] / r["blocks"]["it_s"] - 1 for r in rounds
        ],
    }


def ui_cost(mode: str, updates: int = 40) -> dict[str, float]:
    """The UI thread's CPU time per canvas update in the dashboard at 160x48 (its handler
    and the repaint), and for sixel the encoder thread's per picture: each update a new
    preview, as large as the relay sends it (256 px for half blocks, what the canvas shows
    for real pixels), and drawn before the next."""
    from nst_tui.tui import graphics

    if mode == "sixel":
        graphics.use(graphics.Graphics("sixel", "sixel (benchmark)", (9, 18), None))
    from PIL import Image

    from nst_tui.tui.app import NSTApp
    from nst_tui.tui.images import shrink, wanted_px
    from nst_tui.tui.widgets.pixels import PixelView

    photo = Image.open(IMAGES / "tubingen.jpg").convert("RGB")

    async def go() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as tmp:
            app = NSTApp(outputs=Path(tmp), warm_up=False)
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.5)
                canvas = app.query_one("#canvas", PixelView)
                side = wanted_px("preview")
                frames = [shrink(photo.rotate(k), side) for k in range(updates)]
                # The UI thread's CPU time over the updates, less what it spends idle in
                # as long (its rate measured first): its handler, the repaint, the write.
                # Not pilot.pause(): it messages every widget, work a session does not have.
                wall, cpu = time.perf_counter(), time.thread_time()
                await asyncio.sleep(GAP_S * updates)
                idle_rate = (time.thread_time() - cpu) / (time.perf_counter() - wall)
                wall, cpu = time.perf_counter(), time.thread_time()
                for frame in frames:
                    canvas._next_at = 0.0  # not paced here: every picture is drawn
                    canvas.image = frame
                    await asyncio.sleep(GAP_S)
                    while canvas.pixels and (canvas._busy or canvas._dirty):
                        await asyncio.sleep(0.01)  # encoded and drawn before the next
                wall = time.perf_counter() - wall
                spent = time.thread_time() - cpu - idle_rate * wall
                cols, rows = canvas.content_size
            return {
                "canvas_cells": f"{cols}x{rows}",
                "preview_px": f"{frames[0].width}x{frames[0].height}",
                "ui_ms_per_update": 1e3 * spent / updates,
                "encoder_ms_per_picture": 1e3 * canvas.spent / max(1, canvas.encodings),
                "encodings": canvas.encodings,
            }

    return asyncio.run(go())


def open_4096(mode: str, side: int = 4096) -> dict[str, float]:
    """The viewer on a `side` x `side` final.png: time to the first picture, at fit and at
    1:1, and the UI loop's largest gap meanwhile (64 px: what opening the screen costs)."""
    from PIL import Image

    from nst_tui.tui import graphics

    if mode == "sixel":
        graphics.use(graphics.Graphics("sixel", "sixel (benchmark)", (9, 18), None))
    from textual.app import App

    from nst_tui.tui.screens.viewer import ViewerScreen, ViewSource

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        picture = Image.effect_mandelbrot((side, side), (-2.0, -1.5, 1.0, 1.5), 200)
        picture.convert("RGB").save(folder / "final.png", compress_level=6)

        async def go() -> dict[str, float]:
            gaps = {"largest": 0.0}
            app = App[None]()
            async with app.run_test(size=SIZE) as pilot:
                last = time.perf_counter()

                def tick() -> None:
                    nonlocal last
                    now = time.perf_counter()
                    gaps["largest"] = max(gaps["largest"], now - last)
                    last = now

                app.set_interval(0.005, tick)
                await pilot.pause(0.2)
                gaps["largest"] = 0.0
                start = time.perf_counter()
                screen = ViewerScreen(ViewSource(str(side), folder))
                app.push_screen(screen)
                while screen.first_drawn is None:
                    await asyncio.sleep(0.005)
                fit_s = time.perf_counter() - start
                fit_gap = gaps["largest"]
                canvas = screen.canvas
                while canvas.pixels and canvas.encodings == 0:
                    await asyncio.sleep(0.005)
                shown_s = time.perf_counter() - start
                gaps["largest"] = 0.0
                start = time.perf_counter()
                await pilot.press("1")
                while screen.picture is None or screen.picture.image.size != (side, side):
                    await asyncio.sleep(0.005)
                while screen._rendering or screen._loading:
                    await asyncio.sleep(0.005)
                one_s = time.perf_counter() - start
                one_gap = gaps["largest"]
            return {
                "fit_first_drawn_s": fit_s,
                "fit_on_screen_s": shown_s,
                "fit_largest_ui_gap_ms": 1e3 * fit_gap,
                "one_to_one_s": one_s,
                "one_to_one_largest_ui_gap_ms": 1e3 * one_gap,
            }

        return asyncio.run(go())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--sav-freq", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--open-4096", action="store_true")
    parser.add_argument("--open-one", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, default=4096, help=argparse.SUPPRESS)
    parser.add_argument("--ui-cost", action="store_true", help="UI time per canvas update")
    parser.add_argument("--ui-one", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.size, args.iterations, args.sav_freq)))
        return 0
    if args.open_one:
        print(json.dumps(open_4096(args.open_one, args.side)))
        return 0
    if args.ui_one:
        print(json.dumps(ui_cost(args.ui_one)))
        return 0
    if args.ui_cost:
        result = {}
        for k in range(args.rounds):
            for mode in MODES if k % 2 == 0 else MODES[::-1]:
                cmd = [sys.executable, __file__, "--ui-one", mode]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                result.setdefault(mode, []).append(json.loads(done.stdout.strip().splitlines()[-1]))
        result["date"] = datetime.now().isoformat(timespec="seconds")
        result["load_average"] = os.getloadavg()
    elif args.open_4096:
        result: dict[str, object] = {}
        for side in (64, 4096):  # 64: what opening the viewer costs by itself
            for mode in MODES:
                cmd = [sys.executable, __file__, "--open-one", mode, "--side", str(side)]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                result[f"{mode}_{side}px"] = json.loads(done.stdout.strip().splitlines()[-1])
        result["date"] = datetime.now().isoformat(timespec="seconds")
        result["load_average"] = os.getloadavg()
    else:
        result = side_by_side(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
