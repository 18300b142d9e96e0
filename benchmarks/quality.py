"""Quality against wall time: every recipe with the same time budgets, judged alike.

    python benchmarks/quality.py [--quick] [--sizes 128 256] [--budgets 15 30 60 120]
        [--pairs tubingen:starry_night chelsea:swirls tubingen:shipwreck]
        [--recipes study default ... peer] [--recipe 'NAME={"field": value}' ...]
        [--device cpu] [--json FILE] [--out-dir benchmarks/results] [--iterations]

Each recipe runs once per pair and size until the last budget; the canvas at each
budget (the latest one whose iteration ended at or before it) is scored by the judge of
benchmarks/judge.py: content distance, style distance, artifacts (definitions there and
in benchmarks/README.md). Recipes are the rows of RECIPES (config overrides run through the
engine's prepare and optimize; `--recipe` adds one for a run) and `peer`,
neural-style-pt at its defaults, fed the same Caffe VGG16 convs.
benchmarks/quality_report.py turns the JSON into the tables of benchmarks/README.md.

Timing is the same on both sides: the clock starts when the optimizer is built, after
the weights are loaded, the images read and the targets computed, and each side first
runs a few untimed warm-up iterations at the same size (first-call allocations). The
engine runs in this process, the peer in a child process (it parses sys.argv when
imported and keeps its settings in module globals).

Writes, rewritten after every run so that a long run leaves partial results: a JSON
(default benchmarks/results/quality-cpu.json), a plot of each recipe's distances against
time (same stem, .png) and a sheet of the pictures at each budget per pair and size
(stem-PAIR-SIZEpx.jpg). --quick: one pair at 32 px, budgets 0.5 and 1 s (the test suite
runs it).

--iterations: the budgets count iterations instead of seconds (equal work, not equal
time: how two precisions compare step for step); each recipe then runs exactly to the
last budget with its stop rule off, and the picture at a budget is the canvas after that
many iterations.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from judge import BLOCK_SIZES, HELD_OUT_TAPS, ISSUE_TAPS, Judge  # noqa: E402

from nst_tui import presets  # noqa: E402
from nst_tui.config import Config  # noqa: E402
from nst_tui.engine.events import Event, Frame  # noqa: E402
from nst_tui.engine.images import (  # noqa: E402
    MIN_EDGE,
    fit_canvas,
    load_image,
    resolve_path,
)
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import get_backbone, prepare  # noqa: E402
from nst_tui.engine.scales import optimize_scales, scale_configs  # noqa: E402
from nst_tui.engine.tensors import to_tensor  # noqa: E402
from nst_tui.errors import NSTError  # noqa: E402
from nst_tui.records import write_atomic  # noqa: E402
from nst_tui.sheet import render_sheet  # noqa: E402

# The study's pairs, downsized, ship in tests/data (see its SOURCES.md);
# NST_TUI_IMAGES points at other copies of the same file names.
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))
BUILTINS = {"chelsea": "builtin:chelsea.png", "swirls": "builtin:swirls.png"}

# One line per recipe: config fields over a preset ("preset" names it; the Config
# defaults without). Every recipe runs until the budget (iterations is set by the
# harness); a multi-scale recipe keeps its iterations on the coarse scales, its scales
# are rescaled to the size being measured, and its last scale runs until the budget.
# Each new recipe changes one thing of `default`, to show what that thing is worth.
RECIPES: dict[str, dict[str, Any]] = {
    "study": {"preset": "study", "backbone": "vgg16-caffe"},  # the study's own numbers
    "default": {"preset": "default"},
    # The default in fp32 (the default's precision is "auto": bf16 where the device has
    # fast bf16 units): what bf16 changes, at equal iterations (--iterations) or time.
    "default-fp32": {"preset": "default", "precision": "fp32"},
    "default-lbfgs-fp32": {"preset": "default", "optimizer": "lbfgs", "lr": 1.0,
                           "precision": "fp32"},
    "retuned": {"preset": "noise-adam"},  # the study's loop, weights retuned (the old default)
    "multiscale": {"preset": "multiscale"},
    "lbfgs": {"preset": "noise-lbfgs"},
    "default-lbfgs": {"preset": "default", "optimizer": "lbfgs", "lr": 1.0},
    # L-BFGS's step scales its quasi-Newton direction: 1 is the peer's; a damped and
    # a longer step beside it.
    "default-lbfgs-lr0.5": {"preset": "default", "optimizer": "lbfgs", "lr": 0.5},
    "default-lbfgs-lr2": {"preset": "default", "optimizer": "lbfgs", "lr": 2.0},
    "default-multiscale": {
        "preset": "default", "size": 256, "scales": [64, 128, 256], "iterations": 300,
    },
    "default-multiscale-carried": {
        "preset": "default", "size": 256, "scales": [64, 128, 256], "iterations": 300,
        "carry_moments": True,
    },
    "init-noise": {"preset": "default", "init": "noise"},
    "init-mean-noise": {"preset": "default", "init": "mean-noise"},
    "init-content": {"preset": "default", "init": "content"},
    "tv-l1": {"preset": "default", "tv": "l1"},
    "conv-taps": {"preset": "default", "layer_type": "conv"},
    "w2": {"preset": "default", "style_stats": "w2"},
    "histogram": {"preset": "default", "histogram": 1.0},
    "adam-0.99-ema": {"preset": "default", "adam_beta2": 0.99, "ema": 0.9},
}  # fmt: skip
PEER = "peer"  # neural-style-pt at its defaults (peer_args)

DEFAULT_PAIRS = ("tubingen:starry_night", "chelsea:swirls", "tubingen:shipwreck")
MAX_ITERATIONS = 1_000_000  # "until the budget": the cancel ends every run
WARM_UP_ITERATIONS = 3
SHEET_QUALITY = 90  # JPEG quality of the picture sheets


# ---- snapshots at the budgets ---------------------------------------------------------


@dataclass
class Snapshot:
    elapsed: float  # seconds since the optimizer was built
    iterations: int  # steps (function evaluations for L-BFGS) done
    image: Any = field(repr=False)  # HxWx3 uint8 (engine) or the peer's tensor
    budget: float | None = None


class Snapshots:
    """The canvas at each budget: the latest one whose iteration ended at or before the
    budget (the first one if none had); a run that ends early gives its last to the rest.
    `by_iterations`: budgets count iterations (the canvas after that many)."""

    def __init__(self, budgets: list[float], by_iterations: bool = False) -> None:
        self.budgets = sorted(budgets)
        self.by_iterations = by_iterations
        self.taken: list[Snapshot] = []
        self.last: Snapshot | None = None
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def tick(self, image: Any) -> bool:
        """After each iteration; True once every budget has passed (time to stop)."""
        t = time.perf_counter() - self.t0
        current = Snapshot(t, (self.last.iterations if self.last else 0) + 1, image)
        if self.by_iterations:
            while (
                len(self.taken) < len(self.budgets)
                and current.iterations >= self.budgets[len(self.taken)]
            ):
                self.taken.append(replace(current, budget=self.budgets[len(self.taken)]))
        while (
            not self.by_iterations
            and len(self.taken) < len(self.budgets)
            and t > self.budgets[len(self.taken)]
        ):
            self.taken.append(replace(self.last or current, budget=self.budgets[len(self.taken)]))
        self.last = current
        return len(self.taken) == len(self.budgets)

    def close(self) -> list[Snapshot]:
        for budget in self.budgets[len(self.taken) :]:
            if self.last is not None:
                self.taken.append(replace(self.last, budget=budget))
        return self.taken


# ---- our recipes -------------------------------------------------------------------------


def image_spec(name: str) -> str:
    """A pair's image name: a shipped one (chelsea, swirls), a photo in IMAGES by stem, or
    a path."""
    if name in BUILTINS:
        return BUILTINS[name]
    if "/" in name or "." in name:
        return name
    return str(IMAGES / f"{name}.jpg")


def parse_pair(pair: str) -> tuple[str, str]:
    content, sep, style = pair.partition(":")
    if not sep or not content or not style:
        raise SystemExit(f"--pairs: {pair!r} is not CONTENT:STYLE (e.g. tubingen:starry_night)")
    return image_spec(content), image_spec(style)


def rescaled(scales: list[int], preset_size: int, size: int, smallest: int) -> list[int]:
    """A preset's coarse-to-fine scales for another size: the same ratios, each at least
    `smallest`, ascending, ending at `size`."""
    coarse = {max(smallest, round(s * size / preset_size)) for s in scales[:-1]}
    return [*sorted(s for s in coarse if s < size), size]


def smallest_size(specs: tuple[str, ...]) -> int:
    """The least long edge at which every image's short side reaches the engine's minimum."""
    sizes = [load_image(spec).size for spec in specs]
    return max(math.ceil(MIN_EDGE * max(w, h) / min(w, h)) for w, h in sizes)


def add_recipes(specs: list[str]) -> list[str]:
    """`NAME=JSON` recipes from the command line into RECIPES (over `default` unless they
    name a preset); their names. A field or value the config refuses is refused here,
    before anything runs."""
    names = []
    for spec in specs:
        name, sep, text = spec.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--recipe {spec!r}: expected NAME=JSON")
        name = name.strip()
        if name in RECIPES or name == PEER:
            raise ValueError(f"--recipe {name!r}: a recipe of that name exists")
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--recipe {name!r}: not JSON ({e})") from None
        if not isinstance(fields, dict):
            raise ValueError(f"--recipe {name!r}: expected a JSON object of config fields")
        fields = {"preset": "default", **fields}
        try:
            fields_config(fields)
        except NSTError as e:
            raise ValueError(f"--recipe {name!r}: {e}") from None
        RECIPES[name] = fields
        names.append(name)
    return names


def fields_config(fields: dict[str, Any]) -> Config:
    """A recipe's fields over the preset its "preset" names (the Config defaults without)."""
    fields = dict(fields)
    preset = fields.pop("preset", None)
    return (presets.load(preset).config if preset else Config()).replace(**fields)


def recipe_config(
    name: str, pair: tuple[str, str], size: int, device: str, by_iterations: bool = False
) -> Config:
    recipe = fields_config(RECIPES[name])
    changes: dict[str, Any] = {
        "content_image": pair[0],
        "style_image": pair[1],
        "size": size,
        "sav_freq": 1,  # a frame every iteration: the snapshots need them
        "device": device,
    }
    if recipe.scales:
        smallest = smallest_size(pair)
        changes["scales"] = rescaled(list(recipe.scales), recipe.size, size, smallest)
    if by_iterations:
        changes["stop_change"] = 0.0  # equal iterations: every recipe runs all of them
    return recipe.replace(**changes)


def acc_precision(cfg: Config) -> str:
    """The precision a recipe computes in here ("auto" resolved), as run.json records it."""
    from nst_tui.engine.accel import resolve_precision
    from nst_tui.engine.prepare import resolve_device

    return resolve_precision(cfg.precision, resolve_device(cfg.device))[0]


def run_engine(
    cfg: Config, budgets: list[float], by_iterations: bool = False
) -> tuple[list[Snapshot], str]:
    """One run until the last budget (its stop rule may end it sooner: later budgets then
    get its last picture); the snapshots and how it ended."""
    configs = scale_configs(cfg)
    last = int(max(budgets)) if by_iterations else MAX_ITERATIONS
    configs[-1] = configs[-1].replace(iterations=last)
    warm = configs[-1].replace(iterations=WARM_UP_ITERATIONS)
    warm_prepared = prepare(warm)
    optimize(warm_prepared.objective, warm_prepared.canvases, [lambda event: None])
    del warm_prepared

    snaps = Snapshots(budgets, by_iterations)
    cancel = threading.Event()

    def listen(event: Event) -> None:
        if isinstance(event, Frame) and snaps.tick(event.image):
            cancel.set()

    first = prepare(configs[0])  # outside the clock, as the peer's first targets are
    snaps.start()  # later scales are prepared inside it
    finished = optimize_scales(first, cfg, listen, cancel, configs=configs)
    # The cancel after the last budget is how every run ends (or its own end: the last
    # iteration budget, the stop rule).
    status = "finished" if finished.status == "cancelled" else finished.status
    if finished.converged:
        status = f"finished: {finished.reason}"
    if finished.status == "failed":
        status = f"failed: {finished.reason}"
    return snaps.close(), status


# ---- the peer: neural-style-pt -----------------------------------------------------------


def peer_installed() -> bool:
    return importlib.util.find_spec("neural_style") is not None


def torchvision_indices() -> list[int]:
    """Where VGG16's convs sit in torchvision's `features` (conv, relu, ..., pool)."""
    indices, i = [], 0
    for n in BLOCK_SIZES:
        for _ in range(n):
            indices.append(i)
            i += 2
        i += 1
    return indices


def export_peer_weights(folder: Path) -> Path:
    """vgg16-caffe's convs as a torchvision-layout state dict. neural-style-pt picks its
    layer table from the file name, so it must contain `vgg16`."""
    convs = get_backbone("vgg16-caffe").convs
    state = {}
    for index, (w, b) in zip(torchvision_indices(), convs, strict=True):
        state[f"features.{index}.weight"] = w.clone()
        state[f"features.{index}.bias"] = b.clone()
    path = folder / "vgg16-caffe-convs.pth"
    torch.save(state, path)
    return path


def peer_args(pair: tuple[str, str], size: int, model: Path, device: str) -> list[str]:
    """Its defaults (L-BFGS, relu4_2 content, relu1_1 .. relu5_1 style, weights 5 / 100 /
    1e-3, random init, max pooling), except what the harness needs: our size, model file
    and device, no printing or saving on the way, a fixed seed, and an iteration count it
    never reaches (it runs until the budget, like every recipe)."""
    content, style = (str(resolve_path(spec)) for spec in pair)
    gpu = "c" if device == "cpu" else (device.partition(":")[2] or "0")
    return [
        "-content_image", content, "-style_image", style, "-image_size", str(size),
        "-model_file", str(model), "-disable_check", "-gpu", gpu,
        "-num_iterations", str(MAX_ITERATIONS), "-print_iter", "0", "-save_iter", "0",
        "-seed", "0",
    ]  # fmt: skip


class _Stop(Exception):
    pass


def peer_child(spec: dict[str, Any]) -> None:
    """In a fresh process: run neural-style-pt's main() twice (a warm-up of a few
    evaluations, then until the last budget), timing it from its optimizer's
    construction; write each budget's picture and the timings to spec["out"]."""
    out = Path(spec["out"])
    sys.argv = ["neural-style", *spec["args"]]
    from neural_style import neural_style as ns  # parses sys.argv

    build = ns.setup_optimizer
    tick: list[Callable[[torch.Tensor], bool]] = []

    def setup_optimizer(img: torch.nn.Parameter) -> tuple[Any, int]:
        optimizer, loop_val = build(img)
        step = optimizer.step

        def timed_step(closure: Callable[[], torch.Tensor]) -> Any:
            def evaluate() -> torch.Tensor:
                loss = closure()
                if tick[-1](img.detach().clone()):
                    raise _Stop
                return loss

            return step(evaluate)

        optimizer.step = timed_step
        snaps.start()
        return optimizer, loop_val

    ns.setup_optimizer = setup_optimizer
    warm = iter(range(WARM_UP_ITERATIONS, 0, -1))
    snaps = Snapshots(spec["budgets"], spec.get("by_iterations", False))
    for stop in (lambda img: next(warm) == 1, snaps.tick):
        tick.append(stop)
        with contextlib.suppress(_Stop):
            ns.main()
    rows = []
    for k, snap in enumerate(snaps.close()):
        ns.deprocess(snap.image).save(out / f"snap-{k}.png")
        rows.append({"budget": snap.budget, "elapsed": snap.elapsed, "iterations": snap.iterations})
    (out / "snapshots.json").write_text(json.dumps(rows))


def run_peer(
    pair: tuple[str, str],
    size: int,
    budgets: list[float],
    model: Path,
    device: str,
    by_iterations: bool = False,
) -> tuple[list[Snapshot], str]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {
            "args": peer_args(pair, size, model, device),
            "budgets": budgets,
            "out": tmp,
            "by_iterations": by_iterations,
        }
        cmd = [sys.executable, __file__, "--peer-child", json.dumps(spec)]
        timeout = None if by_iterations else max(budgets) + 600
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        if done.returncode != 0:
            return [], f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
        rows = json.loads((Path(tmp) / "snapshots.json").read_text())
        snaps = [
            Snapshot(
                r["elapsed"],
                r["iterations"],
                np.asarray(Image.open(Path(tmp) / f"snap-{k}.png").convert("RGB")),
                r["budget"],
            )
            for k, r in enumerate(rows)
        ]
    return snaps, "finished"


# ---- judging and writing ---------------------------------------------------------------------


def load_pair(pair: tuple[str, str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and style at `size` on their long edges, as the engine sizes them."""
    return tuple(  # type: ignore[return-value]
        to_tensor(fit_canvas(load_image(spec), size)) for spec in pair
    )


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)


def pair_name(pair: str) -> str:
    return pair.replace(":", "+").replace("/", "_")


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)


def write_sheet(
    path: Path,
    pictures: dict[str, list[Snapshot]],
    budgets: list[float],
    size: tuple[int, int],
    title: str,
    unit: str = "s",
) -> None:
    """Rows: recipes; columns: budgets; each picture at `size` (W, H: the content's, as
    judged: a coarse scale's canvas is enlarged); grey where a run gave no picture."""
    rows = []
    for snaps in pictures.values():
        by_budget = {s.budget: s.image for s in snaps}
        rows.append(
            [
                None
                if by_budget.get(b) is None
                else Image.fromarray(by_budget[b]).resize(size, Image.Resampling.BILINEAR)
                for b in budgets
            ]
        )
    labels = [f"{b:g} {unit}" for b in budgets]
    # JPEG: a sheet of many textured pictures is 3-4 MB as PNG, too much to commit.
    buffer = io.BytesIO()
    render_sheet(rows, list(pictures), labels, title).save(buffer, "JPEG", quality=SHEET_QUALITY)
    write_atomic(path, buffer.getvalue())


PLOTTED = (("content", "content distance"), ("style", "style distance"), ("artifacts", "artifacts"))


def write_plot(path: Path, runs: list[dict[str, Any]], unit: str = "s") -> bool:
    """One row per pair and size; content, style and artifacts against time per recipe."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        if run["snapshots"]:
            groups.setdefault((run["pair"], run["size"]), []).append(run)
    if not groups:
        return False
    fig, axes = plt.subplots(
        len(groups), len(PLOTTED), figsize=(4.2 * len(PLOTTED), 3.2 * len(groups)), squeeze=False
    )
    for row, ((pair, size), group) in enumerate(groups.items()):
        for col, (key, label) in enumerate(PLOTTED):
            ax = axes[row][col]
            for run in group:
                xs = [s["budget"] for s in run["snapshots"]]
                ax.plot(xs, [s[key] for s in run["snapshots"]], marker="o", label=run["recipe"])
            ax.set_xscale("log")
            ax.set_yscale("log")
            budgets = sorted({s["budget"] for run in group for s in run["snapshots"]})
            ax.set_xticks(budgets, labels=[f"{b:g}" for b in budgets])
            ax.minorticks_off()
            ax.set_xlabel("wall time (s)" if unit == "s" else "iterations")
            ax.set_title(f"{label}: {pair}, {size} px", fontsize=9)
            if key == "artifacts":
                ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def table_row(run: dict[str, Any], snap: dict[str, Any]) -> str:
    return (
        f"{run['recipe']:<11} {run['pair']:<24} {run['size']:>4} {snap['budget']:>6g} "
        f"{snap['elapsed']:>7.1f} {snap['iterations']:>6} {snap['content']:>8.3f} "
        f"{snap['style']:>8.3f} {snap['artifacts']:>7.2f} "
        f"{snap['content_issue']:>8.3f} {snap['style_issue']:>8.3f}"
    )


TABLE_HEAD = (
    f"{'recipe':<11} {'pair':<24} {'size':>4} {'budget':>6} {'at (s)':>7} {'iters':>6} "
    f"{'content':>8} {'style':>8} {'artif.':>7} {'c@issue':>8} {'s@issue':>8}"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 px, one pair, 0.5 and 1 s")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--budgets", type=float, nargs="+", help="seconds")
    parser.add_argument("--pairs", nargs="+", help="CONTENT:STYLE names (see image_spec)")
    parser.add_argument("--recipes", nargs="+", help=f"of {[*RECIPES, PEER]}")
    parser.add_argument(
        "--recipe", action="append", default=[], metavar="NAME=JSON",
        help='one more recipe: config fields over `default` (or over the preset its "preset" '
        'names), e.g. \'alpha-6={"alpha": 6}\'; repeatable; run after --recipes, or alone '
        'without it',
    )  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="default OUT_DIR/quality-DEVICE.json")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--iterations", action="store_true",
        help="budgets are iteration counts (equal work), each recipe's stop rule off",
    )  # fmt: skip
    parser.add_argument("--peer-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_child:
        peer_child(json.loads(args.peer_child))
        return 0
    sizes = args.sizes or ([32] if args.quick else [128, 256])
    budgets = sorted(args.budgets or ([0.5, 1.0] if args.quick else [15, 30, 60, 120]))
    if args.iterations:
        budgets = [float(int(b)) for b in budgets]
    unit = "it" if args.iterations else "s"
    pairs = args.pairs or (list(DEFAULT_PAIRS[:1]) if args.quick else list(DEFAULT_PAIRS))
    try:
        extra = add_recipes(args.recipe)
    except ValueError as e:
        parser.error(str(e))
    recipes = args.recipes or ([] if extra else [*RECIPES, *([PEER] if peer_installed() else [])])
    recipes += [r for r in extra if r not in recipes]
    unknown = [r for r in recipes if r not in RECIPES and r != PEER]
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {[*RECIPES, PEER]}")
    if PEER in recipes and not peer_installed():
        parser.error("the peer needs neural-style: pip install -e '.[bench]'")
    if not args.recipes and not peer_installed():
        print("neural-style is not installed: the peer is left out", flush=True)
    tag = args.device.split(":")[0] + ("-quick" if args.quick else "")
    json_path = args.json or args.out_dir / f"quality-{tag}.json"
    stem = json_path.with_suffix("")

    torch.set_grad_enabled(True)
    result: dict[str, Any] = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": args.device if args.device != "cpu" else (platform.processor() or "cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        f"budgets_{unit}": budgets,
        "sizes": sizes,
        "pairs": pairs,
        "recipes": {r: RECIPES.get(r, {"neural-style-pt": "defaults"}) for r in recipes},
        "judge": {
            "backbone": "vgg16-caffe",
            "content_tap": HELD_OUT_TAPS.content,
            "style_taps": list(HELD_OUT_TAPS.style),
            "issue_content_tap": ISSUE_TAPS.content,
            "issue_style_taps": list(ISSUE_TAPS.style),
        },
        "timing": "clock from the optimizer's construction (weights, images and targets "
        "excluded on both sides), after an untimed warm-up of a few iterations",
        "runs": [],
    }
    print(TABLE_HEAD, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = export_peer_weights(Path(tmp)) if PEER in recipes else None
        for size in sizes:
            for pair in pairs:
                images = parse_pair(pair)
                content, style = load_pair(images, size)
                judge = Judge(content, style, also={"issue": ISSUE_TAPS})
                content_wh = (content.shape[-1], content.shape[-2])
                pictures: dict[str, list[Snapshot]] = {}
                for recipe in recipes:
                    if recipe == PEER:
                        assert model is not None
                        snaps, status = run_peer(
                            images, size, budgets, model, args.device, args.iterations
                        )
                    else:
                        cfg = recipe_config(recipe, images, size, args.device, args.iterations)
                        snaps, status = run_engine(cfg, budgets, args.iterations)
                    pictures[recipe] = snaps
                    run = {"recipe": recipe, "pair": pair, "size": size, "status": status}
                    if recipe != PEER:
                        run["precision"] = acc_precision(cfg)
                    run["snapshots"] = [
                        {
                            "budget": s.budget,
                            "elapsed": s.elapsed,
                            "iterations": s.iterations,
                            **judge(as_tensor(s.image)),
                        }
                        for s in snaps
                    ]
                    result["runs"].append(run)
                    for snap in run["snapshots"]:
                        print(table_row(run, snap), flush=True)
                    if status != "finished":
                        print(f"{recipe} {pair} {size} px: {status}", flush=True)
                    write_json(json_path, result)
                sheet = Path(f"{stem}-{pair_name(pair)}-{size}px.jpg")
                title = f"{pair}, {size} px, {args.device}"
                write_sheet(sheet, pictures, budgets, content_wh, title, unit)
                write_plot(stem.with_suffix(".png"), result["runs"], unit)
    print(f"wrote {json_path}, {stem.with_suffix('.png')} and the sheets", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
