"""The optimization loop: objective, canvas init, Adam / L-BFGS, events, cancel.

The loop never waits for the device to report: on logged iterations (every
sav_freq and the last) the loss terms, stacked into one tensor, and the frame
are queued for an asynchronous copy (engine/outbox.py) and handed out as
events once they have landed, a few steps later on a GPU, at once on a CPU.
Divergence is detected on those reports. Adam's step may be replayed from a
CUDA graph (engine/graphs.py); L-BFGS reads its loss every evaluation by
design, so it always runs plain.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from nst_tui.config import Config
from nst_tui.engine import accel as acc
from nst_tui.engine.colors import shown
from nst_tui.engine.events import Event, Finished, Frame, Progress, Status
from nst_tui.engine.features import FeatureExtractor, layer_name
from nst_tui.engine.flops import Throughput, device_peak_tflops, objective_flops
from nst_tui.engine.graphs import StepRunner
from nst_tui.engine.images import frame_on_device, to_uint8
from nst_tui.engine.losses import content_loss, gram, style_loss, style_width_factor, tv_loss
from nst_tui.engine.outbox import Outbox, Report

Emit = Callable[[Event], None]


def uses_content(mode: str) -> bool:
    return mode in ("reconstruct", "content", "both")


def uses_style(mode: str) -> bool:
    return mode in ("reconstruct", "style", "both")


def active_taps(cfg: Config) -> set[int]:
    """The layers a run needs: only these (and the blocks before them) run."""
    taps: set[int] = set()
    if uses_content(cfg.mode):
        taps |= set(cfg.content_layers)
    if uses_style(cfg.mode):
        taps |= set(cfg.style_layers)
    return taps


class Objective(nn.Module):
    """Weighted loss terms of a canvas against targets computed once, at init.

    forward() returns per-sample tensors: total, content, style, tv, then one
    term per layer, each already multiplied by its weight.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        cfg: Config,
        content: torch.Tensor,
        style: torch.Tensor,
        extra_styles: Sequence[torch.Tensor] = (),
        accel: acc.Accel | None = None,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.cfg = cfg
        self.accel = accel or acc.Accel()
        self.content_layers = list(cfg.content_layers) if uses_content(cfg.mode) else []
        self.style_layers = list(cfg.style_layers) if uses_style(cfg.mode) else []
        self.use_tv = cfg.mode == "reconstruct"
        with torch.no_grad():
            cf = self.features(content) if self.content_layers else {}
            styles = [style, *extra_styles] if self.style_layers else []
            sfs = [self.features(s) for s in styles]
        # Targets are constants: computed once per run, never re-encoded per step.
        self.content_targets = {i: cf[i].detach() for i in self.content_layers}
        weights = blend_weights(cfg, len(styles))
        self.style_targets = {
            i: sum(w * gram(sf[i]) for w, sf in zip(weights, sfs, strict=True)).detach()
            for i in self.style_layers
        }
        self.style_w = {
            i: style_weight(cfg, i, self.style_targets[i].shape[-1]) for i in self.style_layers
        }
        # original_colors: frames and the final image take their chroma from the content.
        self.colors = content.detach() if cfg.original_colors else None

    def features(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        return acc.features(self.extractor, image, self.accel)

    def term_names(self) -> list[str]:
        lt = self.cfg.layer_type
        names = ["total", "content", "style", "tv"]
        names += [f"content/{layer_name(i, lt)}" for i in self.content_layers]
        names += [f"style/{layer_name(i, lt)}" for i in self.style_layers]
        return names

    def forward(self, canvas: torch.Tensor) -> list[torch.Tensor]:
        """Terms in the order of term_names(), each of shape (B,)."""
        cfg = self.cfg
        feats = self.features(canvas)
        zero = canvas.new_zeros(canvas.shape[0])
        per_content = [
            cfg.alpha * content_loss(feats[i], self.content_targets[i]) for i in self.content_layers
        ]
        per_style = [
            self.style_w[i] * style_loss(feats[i], self.style_targets[i]) for i in self.style_layers
        ]
        content = torch.stack(per_content).sum(0) if per_content else zero
        style = torch.stack(per_style).sum(0) if per_style else zero
        tv = cfg.gamma * tv_loss(canvas) if self.use_tv else zero
        total = content + style + tv
        return [total, content, style, tv, *per_content, *per_style]


def blend_weights(cfg: Config, n_styles: int) -> list[float]:
    """style_blend scaled to sum to 1 (equal weights when empty): the targets' Gram is
    the weighted mean of the styles' Grams."""
    raw = list(cfg.style_blend) or [1.0] * n_styles
    return [w / sum(raw) for w in raw[:n_styles]]


def style_weight(cfg: Config, layer: int, channels: int) -> float:
    """beta * the layer's weight (times its width factor when normalize_style_weights)."""
    w = cfg.beta * cfg.style_weights[layer]
    return w * style_width_factor(channels, cfg.normalize_style_weights)


def initial_canvas(
    cfg: Config, content: torch.Tensor, init_image: torch.Tensor | None
) -> torch.Tensor:
    """The canvas to optimize, shaped like the content image, as a leaf tensor.

    `init_image` (the style, an image file or a coarser scale's canvas, already resized to
    the canvas) is the start when given.
    """
    _, _, h, w = content.shape
    if init_image is not None:
        if init_image.shape != content.shape:
            raise ValueError("init needs an image of the canvas's shape")
        canvas = init_image.clone()
    elif cfg.init == "noise":
        # Drawn on the CPU from the seed, so the start is the same on every device.
        gen = torch.Generator().manual_seed(cfg.seed)
        canvas = torch.rand(1, 3, h, w, generator=gen).to(content.device)
    elif cfg.init == "content":
        canvas = content.clone()
    else:
        raise ValueError(f"init {cfg.init!r} needs an image")
    return canvas.clamp(0, 1).contiguous().requires_grad_(True)


class _Stop(Exception):
    """Ends an L-BFGS step from inside its closure (cancel or divergence)."""


def optimize(
    objective: Objective,
    canvas: torch.Tensor,
    cfg: Config,
    emit: Emit,
    cancel: threading.Event | None = None,
) -> Finished:
    """Run cfg.iterations steps on `canvas` in place, emitting Progress and Frame events."""
    throughput = Throughput(
        objective_flops(objective, canvas),
        device_peak_tflops(canvas.device, objective.accel.arithmetic),
    )
    loop = _Loop(
        objective, canvas, cfg, emit, cancel or threading.Event(), objective.colors, throughput
    )
    return loop.run()


class _Loop:
    def __init__(
        self,
        objective: Objective,
        canvas: torch.Tensor,
        cfg: Config,
        emit: Emit,
        cancel: threading.Event,
        colors: torch.Tensor | None = None,
        throughput: Throughput | None = None,  # None: TFLOP/s not reported (batched cells)
    ) -> None:
        self.objective = objective
        self.throughput = throughput
        self.colors = colors  # the content, when frames keep its colours
        self.canvas = canvas
        self.cfg = cfg
        self.emit = emit
        self.cancel = cancel
        self.names = objective.term_names()
        self.done = 0
        self.losses: dict[str, float] = {}
        self.last_frame: np.ndarray | None = None
        self.status, self.reason = "finished", ""
        self.outbox = Outbox(canvas.device)
        # ema: what is shown and saved is a running average of the canvas (from its start),
        # which smooths the step-to-step noise of the optimizer; losses stay the canvas's.
        self.average = canvas.detach().clone() if cfg.ema else None
        self.start = time.perf_counter()

    def update_average(self) -> None:
        """Fold the canvas into the average; call once per step, after clamping."""
        if self.average is not None:
            with torch.no_grad():
                self.average.lerp_(self.canvas.detach(), 1.0 - self.cfg.ema)

    def shown_tensor(self) -> torch.Tensor:
        canvas = self.canvas if self.average is None else self.average
        return shown(canvas, self.colors)

    def shown_image(self) -> np.ndarray:
        return to_uint8(self.shown_tensor())

    def logged(self, iteration: int) -> bool:
        return iteration % self.cfg.sav_freq == 0 or iteration == self.cfg.iterations

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def note(self, text: str) -> None:
        self.emit(Status(text, None))

    def queue_report(self, iteration: int, values: torch.Tensor) -> None:
        """On logged iterations: queue the copy of the terms (1-D, in term_names() order)
        and of the frame; never waits for the device."""
        with torch.no_grad():
            frame = frame_on_device(self.shown_tensor())
        self.outbox.put(iteration, values.detach().float(), frame)

    def deliver(self, reports: list[Report]) -> None:
        """Events for reports that have landed; a non-finite loss ends the run."""
        for r in reports:
            if not all(math.isfinite(v) for v in r.values):
                self.status = "failed"
                self.reason = (
                    f"diverged at iteration {r.iteration}: loss became {r.values[0]}; "
                    "try a lower lr or smaller weights"
                )
                self.outbox.clear()
                raise _Stop
            self.losses = dict(zip(self.names, r.values, strict=True))
            elapsed = self.elapsed()  # the device has done this iteration by now
            it_per_s = r.iteration / max(elapsed, 1e-9)
            tflop_s, of_peak = self.throughput.at(it_per_s) if self.throughput else (None, None)
            self.emit(
                Progress(
                    r.iteration,
                    self.cfg.iterations,
                    self.losses,
                    it_per_s,
                    elapsed,
                    tflop_s,
                    of_peak,
                )
            )
            self.last_frame = r.image
            self.emit(Frame(r.iteration, r.image))

    def report(self, iteration: int, terms: list[torch.Tensor]) -> None:
        self.queue_report(iteration, torch.stack([t.detach().sum() for t in terms]))
        self.deliver(self.outbox.ready())

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            self.status, self.reason = "cancelled", f"cancelled at iteration {self.done}"
            raise _Stop

    def evaluate(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self.check_cancel()
        terms = self.objective(self.canvas)
        total = terms[0].sum()
        total.backward()
        self.done += 1
        return total, terms

    def run(self) -> Finished:
        try:
            if self.cfg.optimizer == "lbfgs":
                self.run_lbfgs()
            else:
                self.run_adam()
        except _Stop:
            pass
        except torch.OutOfMemoryError:
            self.status = "failed"
            self.reason = (
                f"out of device memory at size {self.cfg.size}; try a smaller size "
                "or fewer/shallower layers"
            )
        return self.finish()

    def finish(self) -> Finished:
        """Emit and return the end of this run (also used per cell by engine.batch)."""
        if self.status != "failed":
            # Reports still in flight are of iterations done (a cancel ends the loop with
            # some queued); a divergence among them makes the run failed after all.
            with contextlib.suppress(_Stop):
                self.deliver(self.outbox.drain())
        self.outbox.clear()
        wall = self.elapsed()
        image = self.last_frame if self.status == "failed" else None
        if image is None:
            image = self.shown_image()
        finished = Finished(
            self.status,
            self.reason,
            self.done,
            wall,
            self.done / max(wall, 1e-9),
            self.losses,
            image,
        )
        self.emit(finished)
        return finished

    def run_adam(self) -> None:
        graphs = self.objective.accel.cuda_graphs
        # capturable: Adam keeps its step count on the device, as a graph replay needs.
        opt = torch.optim.Adam([self.canvas], lr=self.cfg.lr, capturable=graphs)

        def step() -> list[torch.Tensor]:
            opt.zero_grad(set_to_none=True)
            terms = self.objective(self.canvas)
            terms[0].sum().backward()
            opt.step()
            with torch.no_grad():
                self.canvas.clamp_(0, 1)  # keep a valid image
            self.update_average()
            return terms

        runner = StepRunner(step, self.canvas.device, graphs, self.note)
        for _ in range(self.cfg.iterations):
            self.check_cancel()
            terms = runner()
            self.done += 1
            if self.logged(self.done):
                # Losses are of the canvas before this step (as optimizers report
                # them); the frame is the canvas after it.
                self.report(self.done, terms)
            elif self.outbox:
                self.deliver(self.outbox.ready())

    def run_lbfgs(self) -> None:
        n = self.cfg.iterations
        # max_eval bounds function evaluations, so an L-BFGS "iteration" is one
        # evaluation (as for Adam); the tolerances never end the run early.
        opt = torch.optim.LBFGS(
            [self.canvas],
            lr=self.cfg.lr,
            max_iter=n,
            max_eval=n,
            tolerance_grad=-1,
            tolerance_change=-1,
            history_size=self.cfg.history,
        )

        def closure() -> torch.Tensor:
            with torch.no_grad():
                self.canvas.clamp_(0, 1)
            self.update_average()  # each evaluation is an iteration, at the point it evaluates
            opt.zero_grad(set_to_none=True)
            total, terms = self.evaluate()
            if self.logged(self.done):
                self.report(self.done, terms)
            return total

        opt.step(closure)
        with torch.no_grad():
            self.canvas.clamp_(0, 1)
