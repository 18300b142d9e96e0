"""What bf16 costs in quality: the same run in fp32 and in bf16, judged in fp32.

    python benchmarks/bf16_quality.py [--preset default] [--size 128] [--iterations 400]
        [--device cpu|cuda] [--out benchmarks/results]

Both runs start from the same canvas (same seed) with the same config except
`precision`. Each final canvas is then scored by the fp32 objective, so the two
totals are comparable (a bf16 run's own losses come from bf16 features). Writes
a side-by-side PNG and a JSON with the losses, the mean absolute pixel
difference between the two results, and each run's it/s (meaningful for speed on
a GPU, or a CPU with AMX; a CPU without bf16 units emulates bf16, several times
slower than fp32). The stop rule is off in both runs: they do equal work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_tui import presets  # noqa: E402
from nst_tui.config import Config  # noqa: E402
from nst_tui.engine.events import Finished  # noqa: E402
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import Prepared, prepare  # noqa: E402
from nst_tui.sheet import render_sheet, write_sheet_png  # noqa: E402

# The study's pairs, downsized, ship in tests/data (see its SOURCES.md);
# NST_TUI_IMAGES points at other copies of the same file names.
IMAGES = Path(os.environ.get("NST_TUI_IMAGES", ROOT / "tests" / "data"))


def run(cfg: Config) -> tuple[Prepared, Finished]:
    prepared = prepare(cfg)
    finished = optimize(prepared.objective, prepared.canvases, [lambda event: None])[0]
    return prepared, finished


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    base = presets.load(args.preset).config.replace(
        content_image=str(IMAGES / "tubingen.jpg"),
        style_image=str(IMAGES / "starry_night.jpg"),
        size=args.size,
        iterations=args.iterations,
        sav_freq=args.iterations,
        device=args.device,
        stop_change=0.0,
    )
    fp32_prepared, fp32 = run(base.replace(precision="fp32"))
    _, bf16 = run(base.replace(precision="bf16"))

    judge = fp32_prepared.objective  # the fp32 objective scores both results
    cell = judge.cells[0]
    names, columns = cell.term_names(), cell.columns()

    def scored(image: np.ndarray) -> dict[str, float]:
        canvas = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255)
        with torch.no_grad():
            terms = judge(canvas.to(fp32_prepared.device))[0, columns]
        return {n: float(t) for n, t in zip(names, terms, strict=True)}

    a, b = scored(fp32.image), scored(bf16.image)
    diff = float(np.abs(fp32.image.astype(np.int16) - bf16.image.astype(np.int16)).mean())
    stamp = datetime.now().astimezone()
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    result = {
        "date": stamp.isoformat(timespec="seconds"),
        "device": device,
        "torch": torch.__version__,
        "config": base.differences(),
        "fp32": {"total_judged_in_fp32": a["total"], "losses": a, "it_s": fp32.it_per_s},
        "bf16": {"total_judged_in_fp32": b["total"], "losses": b, "it_s": bf16.it_per_s},
        "total_ratio_bf16_over_fp32": b["total"] / a["total"],
        "mean_abs_pixel_difference_0_255": diff,
    }
    tag = "cpu" if device == "cpu" else "cuda"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"bf16-vs-fp32-{args.size}px-{tag}"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    labels = [f"fp32: total {a['total']:.3g}", f"bf16: total {b['total']:.3g}"]
    title = (
        f"{args.preset}, {args.size} px, {args.iterations} Adam steps; totals scored in fp32; "
        f"mean |difference| {diff:.1f}/255"
    )
    images = [Image.fromarray(fp32.image), Image.fromarray(bf16.image)]
    write_sheet_png(args.out / f"{stem}.png", render_sheet([images], [""], labels, title))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
