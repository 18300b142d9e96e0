"""Iterations per second of the engine against a loop written the way the study's code works.

    python benchmarks/speed.py [--device cpu|cuda] [--sizes 128 256 ...] [--json FILE]

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
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nst_tui.config import Config  # noqa: E402
from nst_tui.engine.losses import content_loss, gram, style_loss, tv_loss  # noqa: E402
from nst_tui.engine.optimize import optimize  # noqa: E402
from nst_tui.engine.prepare import get_backbone, load_inputs, prepare  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def make_config(size: int, iterations: int, device: str) -> Config:
    return Config.from_dict(
        {
            "content_image": str(IMAGES / "tubingen.jpg"),
            "style_image": str(IMAGES / "starry_night.jpg"),
            "size": size,
            "iterations": iterations,
            "sav_freq": iterations,  # one report at the end: measure the loop, not the recorder
            "backbone": "vgg16-caffe",
            "device": device,
        }
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_rate(cfg: Config) -> float:
    prepared = prepare(cfg)
    sync(prepared.device)
    t0 = time.perf_counter()
    optimize(prepared.objective, prepared.canvas, cfg, lambda event: None)
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


def sweep_cells(size: int, iterations: int, device: str) -> list:
    """The study's first table: content layers 0..4 (noise init, Adam), as 5 cells."""
    from nst_tui.engine.batch import BatchCell

    cells = []
    for layer in range(5):
        cfg = make_config(size, iterations, device).replace(content_layers=[layer])
        prepared = prepare(cfg)
        cells.append(BatchCell.from_objective(prepared.objective, prepared.canvas, lambda e: None))
    return cells


def sweep_rates(size: int, iterations: int, device: str) -> tuple[float, float]:
    """Cell-iterations per second: the 5 cells as one batch, then one after another."""
    from nst_tui.engine.batch import optimize_batch, shared_extractor

    cells = sweep_cells(size, iterations, device)
    dev = cells[0].canvas.device
    extractor = shared_extractor(get_backbone("vgg16-caffe"), [c.cfg for c in cells], dev)
    sync(dev)
    t0 = time.perf_counter()
    optimize_batch(extractor, cells)
    sync(dev)
    batched = 5 * iterations / (time.perf_counter() - t0)

    seq_time = 0.0
    for layer in range(5):
        cfg = make_config(size, iterations, device).replace(content_layers=[layer])
        prepared = prepare(cfg)
        sync(dev)
        t0 = time.perf_counter()
        optimize(prepared.objective, prepared.canvas, cfg, lambda event: None)
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


def measure(size: int, device: str, iterations: int, repeats: int) -> dict[str, float]:
    cfg = make_config(size, iterations, device)
    warm = make_config(size, 2, device)
    engine_rate(warm), baseline_rate(warm)  # first-call allocations and kernel choices
    engine, baseline = [], []
    for _ in range(repeats):
        engine.append(engine_rate(cfg))
        baseline.append(baseline_rate(cfg))
    e, b = statistics.median(engine), statistics.median(baseline)
    return {"size": size, "engine_it_s": e, "baseline_it_s": b, "ratio": e / b}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--iterations", type=int, help="per measurement (default by device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    sizes = args.sizes or ([128, 256, 512, 1024] if cuda else [128, 256])
    iterations = args.iterations or (200 if cuda else 10)
    torch.set_grad_enabled(True)

    rows = []
    print(f"device {args.device}, {iterations} iterations x {args.repeats} repeats (median)")
    print(f"{'size':>6} {'engine it/s':>12} {'baseline it/s':>14} {'ratio':>7}")
    for size in sizes:
        row = measure(size, args.device, iterations, args.repeats)
        rows.append(row)
        print(
            f"{size:>6} {row['engine_it_s']:>12.2f} {row['baseline_it_s']:>14.2f} "
            f"{row['ratio']:>6.2f}x",
            flush=True,
        )
    sweep = measure_sweep(128, args.device, iterations, args.repeats)
    print(
        f"5-cell sweep at 128 px (content layers 0..4): batched {sweep['batched_cell_it_s']:.2f} "
        f"cell-it/s, one after another {sweep['sequential_cell_it_s']:.2f} cell-it/s, "
        f"{sweep['ratio']:.2f}x",
        flush=True,
    )
    if args.json:
        result = {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "iterations": iterations,
            "repeats": args.repeats,
            "backbone": "vgg16-caffe",
            "results": rows,
            "sweep": sweep,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
