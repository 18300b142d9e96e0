"""The optimization loop: canvas init, Adam / L-BFGS over the one objective, events, cancel.

Every run is a batch of cells (a single run is a batch of one) sharing one
`Objective`. Adam steps every live cell's canvas at once; L-BFGS runs one cell
(its line search is per run). Each cell keeps its own reporting state
(`CellLoop`): it logs every sav_freq iterations and at its last, ends on its own
(its length, a divergence) while the others go on.

The loop never waits for the device to report: on logged iterations the loss
terms and the frame are queued for an asynchronous copy (engine/outbox.py) and
handed out as events once they have landed, a few steps later on a GPU, at once
on a CPU. Divergence is detected on those reports. The one exception is the
first iteration, read at once: a loss that is not finite before any step was
taken means the weights or inputs are broken, not that lr is too high. Adam's
step may be replayed from a CUDA graph (engine/graphs.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# torch.optim imports torch._dynamo at the first optimizer (its add_param_group): about
# 140 MiB resident on a CPU. Imported with the engine, so that a process's resident memory
# when the memory plan reads it (a dashboard warmed up, a run's batch) already holds it.
import torch._dynamo
import torch.nn.functional as F

from nst_tui.config import Config
from nst_tui.engine import accel as acc
from nst_tui.engine.colors import shown
from nst_tui.engine.converge import Gains, converged_reason
from nst_tui.engine.events import Emit, Finished, Frame, Progress, Status
from nst_tui.engine.flops import Throughput, device_peak_tflops, objective_flops
from nst_tui.engine.graphs import StepRunner
from nst_tui.engine.objective import TOTAL, CellTargets, Objective
from nst_tui.engine.outbox import Outbox, Report
from nst_tui.engine.tensors import frame_on_device, to_uint8
from nst_tui.engine.tiles import UNWATCHED, Interrupted, TileWatch

NOT_FINITE_AT_START = "the loss is not finite at the first iteration, before any step: "
BROKEN_INPUTS = "the network weights or the input images hold NaN or infinite values"
TOO_LARGE = "the weighted terms overflow float32; try smaller alpha, beta, gamma or style_weights"
STATE_OVERFLOW = (
    "Adam's moments overflowed float32 by iteration {at}: the weighted gradient is too large "
    "to square, so the canvas stopped moving; scale alpha, beta, gamma, histogram and "
    "style_weights down together (by the same factor Adam's steps stay the same)"
)


# Standard deviations (pixels in 0..1) of the Gaussian noise of the mean-noise and
# content-noise inits: faint enough to leave a flat start (neural-style's own random init
# is fainter still), and enough to shake a content start off the photo's exact features.
# When this long (seconds) has passed since the last Progress, a step gets one of its own,
# logged or not (count_step): a 4096 px step takes minutes.
SLOW_STEP_S = 5.0
MEAN_NOISE_STD = 0.01
CONTENT_NOISE_STD = 0.1


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
    elif cfg.init in ("mean-noise", "content-noise"):
        gen = torch.Generator().manual_seed(cfg.seed)
        noise = torch.randn(1, 3, h, w, generator=gen).to(content.device)
        if cfg.init == "mean-noise":  # the peer's start: a near-flat canvas of one colour
            canvas = content.mean(dim=(2, 3), keepdim=True) + MEAN_NOISE_STD * noise
        else:
            canvas = content + CONTENT_NOISE_STD * noise
    else:
        raise ValueError(f"init {cfg.init!r} needs an image")
    return canvas.clamp(0, 1).contiguous().requires_grad_(True)


class _Stop(Exception):
    """Ends a cell's loop (cancel or divergence)."""


class CellLoop:
    """One cell's side of the loop: its canvas, counters, reports and end."""

    def __init__(
        self,
        targets: CellTargets,
        canvas: torch.Tensor,
        emit: Emit,
        cancel: threading.Event,
        throughput: Throughput | None = None,  # None: TFLOP/s not reported
    ) -> None:
        self.cfg = targets.cfg
        self.targets = targets
        self.names = targets.term_names()
        self.colors = targets.colors  # the content, when frames keep its colours
        self.canvas = canvas
        self.emit = emit
        self.cancel = cancel
        self.throughput = throughput
        self.done = 0
        self.queued = 0  # the last iteration queued for a report
        self.last_values: torch.Tensor | None = None  # the last step's terms
        self.losses: dict[str, float] = {}
        self.last_frame: np.ndarray | None = None
        self.status, self.reason = "finished", ""
        self.outbox = Outbox(canvas.device)
        # ema: what is shown and saved is a running average of the canvas (from its start),
        # which smooths the step-to-step noise of the optimizer; losses stay the canvas's.
        self.average = canvas.detach().clone() if self.cfg.ema else None
        # The start, until the first iteration has passed its check: a run that fails there
        # (before any step counts) records the canvas it started from, not the step's NaN.
        self.start_canvas: torch.Tensor | None = canvas.detach().clone()
        # Adam sets it: a 0-d device bool, whether its moments of this canvas are in float32's
        # range (None before the first step). Checked at the first iteration and, queued with
        # each report, at the logged ones: never a wait of its own.
        self.state_ok: Callable[[], torch.Tensor | None] | None = None
        # stop_change: windows of the total loss (engine/converge.py), their gains read back
        # through their own outbox; `gain` is the last one landed.
        rule = self.cfg.stop_change > 0
        self.gains = Gains(self.cfg.stop_window, canvas.device) if rule else None
        self.checks = Outbox(canvas.device)
        self.gain: float | None = None
        self.converged = False
        self.start = time.perf_counter()
        self.progress_at = self.start  # when the last Progress went out

    def update_average(self) -> None:
        """Fold the canvas into the average; call once per step, after clamping."""
        if self.average is not None:
            with torch.no_grad():
                self.average.lerp_(self.canvas.detach(), 1.0 - self.cfg.ema)

    def shown_tensor(self) -> torch.Tensor:
        canvas = self.canvas if self.average is None else self.average
        return shown(canvas, self.colors)

    def logged(self, iteration: int) -> bool:
        return iteration % self.cfg.sav_freq == 0 or iteration == self.cfg.iterations

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def note(self, text: str) -> None:
        self.emit(Status(text, None))

    def fail(self, reason: str) -> None:
        self.status, self.reason = "failed", reason
        self.outbox.clear()
        raise _Stop

    def check_start(self, total: torch.Tensor) -> None:
        """At the first iteration only (it waits for the device): a loss that is not finite
        before any step, or an optimizer state that overflowed at the first step."""
        if self.done != 1:
            return
        start, self.start_canvas = self.start_canvas, None
        if not math.isfinite(float(total.detach())):
            self.done = 0  # the step taken from a loss that is not finite does not count
            if start is not None:
                with torch.no_grad():
                    self.canvas.copy_(start)
                    if self.average is not None:
                        self.average.copy_(start)
            self.fail(NOT_FINITE_AT_START + (TOO_LARGE if self.targets.finite() else BROKEN_INPUTS))
        self.check_state(self.state_ok() if self.state_ok is not None else None, 1)

    def check_state(self, ok: torch.Tensor | float | None, iteration: int) -> None:
        """Fails the cell when the optimizer's state has overflowed (`ok` false)."""
        if ok is not None and not bool(ok):
            self.fail(STATE_OVERFLOW.format(at=iteration))

    def queue_report(self, iteration: int, values: torch.Tensor) -> None:
        """On logged iterations: queue the copy of the terms (1-D, in term_names() order)
        and of the frame; never waits for the device."""
        with torch.no_grad():
            frame = frame_on_device(self.shown_tensor())
            values = values.detach().float()
            if self.state_ok is not None:  # the state's check rides along, as the last value
                ok = self.state_ok()
                ok = values.new_ones(1) if ok is None else ok.float().view(1)
                values = torch.cat([values, ok])
        self.outbox.put(iteration, values, frame)
        self.queued = iteration

    def deliver(self, reports: list[Report]) -> None:
        """Events for reports that have landed; a non-finite loss, or an optimizer state
        that overflowed, ends the cell."""
        for r in reports:
            ok = r.values.pop() if self.state_ok is not None else None
            if not all(math.isfinite(v) for v in r.values):
                self.fail(
                    f"diverged at iteration {r.iteration}: loss became {r.values[0]}; "
                    "try a lower lr or smaller weights"
                )
            self.check_state(ok, r.iteration)
            self.losses = dict(zip(self.names, r.values, strict=True))
            self.progress(r.iteration, self.losses)  # the device has done it by now
            assert r.image is not None  # every report of this outbox carries its frame
            self.last_frame = r.image
            self.emit(Frame(r.iteration, r.image))

    def progress(self, iteration: int, losses: dict[str, float], logged: bool = True) -> None:
        elapsed = self.elapsed()
        it_per_s = iteration / max(elapsed, 1e-9)
        tflop_s, of_peak = self.throughput.at(it_per_s) if self.throughput else (None, None)
        self.emit(
            Progress(
                iteration,
                self.cfg.iterations,
                losses,
                it_per_s,
                elapsed,
                tflop_s,
                of_peak,
                self.gain,
                logged,
            )
        )
        self.progress_at = time.perf_counter()

    def count_step(self, values: torch.Tensor) -> None:
        """A step that is not logged, when steps are slow: a Progress of its own (no frame;
        not in the loss log), read at once. Waiting for the device costs nothing beside a
        step of seconds, and sav_freq such steps would pass with nothing on the screen."""
        losses = dict(zip(self.names, values.detach().float().tolist(), strict=True))
        self.progress(self.done, losses, logged=False)

    def after_step(self, values: torch.Tensor) -> None:
        """Count the step; report it when logged (`values`: this cell's terms, 1-D)."""
        self.done += 1
        self.last_values = values
        self.check_start(values[TOTAL])
        if self.gains is not None:  # first: a stop here is reported by finish(), with its gain
            self.check_gain(values[TOTAL])
        if self.logged(self.done):
            self.queue_report(self.done, values)
        elif not self.outbox and time.perf_counter() - self.progress_at >= SLOW_STEP_S:
            self.count_step(values)
        if self.outbox:
            self.deliver(self.outbox.ready())  # finish() drains the rest

    def check_gain(self, total: torch.Tensor) -> None:
        """Fold this step's loss into the stop rule's window, close the window when it
        ends; stop (finished) once a gain that has landed is below stop_change."""
        assert self.gains is not None
        self.gains.add(total)
        if self.done % self.gains.window == 0 and (gain := self.gains.close()) is not None:
            self.checks.put(self.done, gain)
        for r in self.checks.ready():
            self.gain = r.values[0]
            if self.gain < self.cfg.stop_change and self.done < self.cfg.iterations:
                self.converged = True
                self.reason = converged_reason(
                    self.done, self.cfg.iterations, r.iteration, self.gains.window,
                    self.gain, self.cfg.stop_change,
                )  # fmt: skip
                self.checks.clear()
                raise _Stop

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            self.status, self.reason = "cancelled", f"cancelled at iteration {self.done}"
            raise _Stop

    def finish(self) -> Finished:
        """Emit and return the end of this cell's run."""
        stopped = self.status == "cancelled" or self.converged
        if stopped and self.last_values is not None and self.queued < self.done:
            # A last row and frame where it stopped: final.png, the GIF, losses.csv and
            # run.json then agree on the iteration.
            self.queue_report(self.done, self.last_values)
        if self.status != "failed":
            # Reports still in flight are of iterations done (a cancel ends the loop with
            # some queued); a divergence among them makes the run failed after all.
            with contextlib.suppress(_Stop):
                self.deliver(self.outbox.drain())
        self.outbox.clear()
        self.checks.clear()
        wall = self.elapsed()
        image = self.last_frame if self.status == "failed" else None
        if image is None:
            image = to_uint8(self.shown_tensor())
        finished = Finished(
            self.status,
            self.reason,
            self.done,
            wall,
            self.done / max(wall, 1e-9),
            self.losses,
            image,
            converged=self.converged and self.status == "finished",
            gain=self.gain,
        )
        self.emit(finished)
        return finished


@dataclass
class Moments:
    """Adam's state of a one-cell run, handed from one scale to the next (carry_moments):
    the next scale starts with the step count and moments of the last, upsampled, so it
    does not spend its first steps re-learning step sizes the coarse scale knew."""

    step: torch.Tensor | None = None
    exp_avg: torch.Tensor | None = None
    exp_avg_sq: torch.Tensor | None = None

    def load(self, opt: torch.optim.Adam, canvas: torch.Tensor) -> None:
        if self.step is None or self.exp_avg is None or self.exp_avg_sq is None:
            return
        size = canvas.shape[-2:]

        def resized(t: torch.Tensor) -> torch.Tensor:
            # Bilinear without antialiasing: convex weights, so exp_avg_sq stays >= 0.
            t = t.to(canvas.device)
            if t.shape[-2:] == size:
                return t.clone()
            return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)

        opt.state[canvas].update(
            step=self.step.clone(),
            exp_avg=resized(self.exp_avg),
            exp_avg_sq=resized(self.exp_avg_sq),
        )

    def save(self, opt: torch.optim.Adam, canvas: torch.Tensor) -> None:
        state = opt.state.get(canvas, {})
        if "exp_avg" in state:
            self.step = state["step"].detach().clone()
            self.exp_avg = state["exp_avg"].detach().clone()
            self.exp_avg_sq = state["exp_avg_sq"].detach().clone()


def optimize(
    objective: Objective,
    canvases: Sequence[torch.Tensor],
    emits: Sequence[Emit],
    cancel: threading.Event | None = None,
    moments: Moments | None = None,
) -> list[Finished]:
    """Run every cell of `objective` from its canvas (optimized in place), each cell
    emitting its own Progress, Frame and Finished; returns each cell's Finished.

    `moments` (a one-cell Adam run): start from its state when it holds one, and leave
    the run's final state in it."""
    cancel = cancel or threading.Event()
    cells = objective.cells
    throughput = None
    if len(cells) == 1:  # a batch's cells do different work: no one figure per cell
        throughput = Throughput(
            objective_flops(objective, canvases[0]),
            device_peak_tflops(canvases[0].device, objective.accel.arithmetic),
        )
    loops = [
        CellLoop(t, c, e, cancel, throughput)
        for t, c, e in zip(cells, canvases, emits, strict=True)
    ]
    if any(t.cfg.optimizer == "lbfgs" for t in cells) and len(loops) != 1:
        raise ValueError("only Adam cells can share a batch; L-BFGS's line steps are per run")
    if moments is not None and len(loops) != 1:
        raise ValueError("Adam's moments are carried for a run of one cell")
    # A step in tiles reads the cancel between tiles (tiles.Interrupted), and tells the
    # first cell's listeners how far a slow pass is.
    objective.watch = TileWatch(cancel, lambda text, f: loops[0].emit(Status(text, f)))
    try:
        if cells[0].cfg.optimizer == "lbfgs":
            return [_lbfgs(objective, loops[0])]
        adam = _Adam(objective, loops, cancel)
        if moments is not None:
            moments.load(adam.opt, loops[0].canvas)
        results = adam.run()
        if moments is not None:
            moments.save(adam.opt, loops[0].canvas)
        return results
    finally:
        objective.watch = UNWATCHED


def _lbfgs(objective: Objective, loop: CellLoop) -> Finished:
    n = loop.cfg.iterations
    # max_eval bounds function evaluations, so an L-BFGS "iteration" is one
    # evaluation (as for Adam); the tolerances never end the run early.
    opt = torch.optim.LBFGS(
        [loop.canvas],
        lr=loop.cfg.lr,
        max_iter=n,
        max_eval=n,
        tolerance_grad=-1,
        tolerance_change=-1,
        history_size=loop.cfg.history,
    )

    columns = torch.tensor(objective.cells[0].columns(), device=loop.canvas.device)

    def closure() -> torch.Tensor:
        loop.check_cancel()
        with torch.no_grad():
            loop.canvas.clamp_(0, 1)
        opt.zero_grad(set_to_none=True)
        terms: torch.Tensor = objective(loop.canvas)[0]  # nn.Module's call is typed Any
        terms[TOTAL].backward()
        # Each evaluation is an iteration, at the point it evaluates; folded once it has
        # passed (an evaluation cancelled between tiles is not one).
        loop.update_average()
        loop.after_step(terms.index_select(0, columns))
        return terms[TOTAL]

    try:
        opt.step(closure)
        with torch.no_grad():
            loop.canvas.clamp_(0, 1)
    except _Stop:
        pass
    except Interrupted:  # cancelled between tiles: the evaluation is dropped
        with contextlib.suppress(_Stop):  # it marks the loop cancelled
            loop.check_cancel()
    except torch.OutOfMemoryError:
        loop.status, loop.reason = (
            "failed",
            (
                f"out of device memory at size {loop.cfg.size}; try a smaller size "
                "or fewer/shallower layers"
            ),
        )
    return loop.finish()


def moments_in_range(opt: torch.optim.Adam, param: torch.Tensor) -> torch.Tensor | None:
    """Whether Adam's second moment of `param` has not overflowed, as a 0-d device bool (no
    wait); None before its first step. The square of a gradient above 1.8e19 is inf in
    float32: every step m / sqrt(v) is then 0 and the canvas stands still while the loss
    stays finite. (A NaN there comes from a NaN gradient, which turns the canvas NaN: the
    loss reports that divergence.)"""
    state = opt.state.get(param)
    if not state or "exp_avg_sq" not in state:
        return None
    return ~torch.isinf(state["exp_avg_sq"]).any()


class _Adam:
    """Every live cell's Adam step at once: one forward and one backward for all."""

    def __init__(self, objective: Objective, loops: list[CellLoop], cancel: threading.Event):
        self.cancel = cancel
        self.objective = objective
        self.loops = loops
        device = loops[0].canvas.device
        # Each cell's columns as a device index: picking them never waits for the device.
        self.columns = [torch.tensor(t.columns(), device=device) for t in objective.cells]
        graphs = objective.accel.cuda_graphs
        waits = {w for t in objective.cells if (w := acc.step_waits(t.cfg))}
        if graphs and waits:  # accel chose for the first cell; another's step may wait
            graphs = False
            loops[0].note(f"CUDA graphs off: {'; '.join(sorted(waits))}")
        self.graphs, self.device = graphs, device
        # One parameter group per cell keeps each cell's state and lr its own.
        # capturable: Adam keeps its step count on the device, as a graph replay needs.
        self.opt = torch.optim.Adam(
            [
                {"params": [loop.canvas], "lr": loop.cfg.lr, "betas": (0.9, loop.cfg.adam_beta2)}
                for loop in loops
            ],
            capturable=graphs,
        )
        for loop in loops:
            loop.state_ok = functools.partial(moments_in_range, self.opt, loop.canvas)
        self.results: dict[int, Finished] = {}
        self.active = list(range(len(loops)))
        self.index: torch.Tensor | None = None  # the active cells, once some have ended

    def step(self, index: torch.Tensor | None) -> torch.Tensor:
        """One Adam step of the active cells; the (A, N_COLUMNS) loss matrix before it."""
        self.opt.zero_grad(set_to_none=True)
        canvas = torch.cat([self.loops[k].canvas for k in self.active])
        terms: torch.Tensor = self.objective(canvas, index)  # nn.Module's call is typed Any
        terms[:, TOTAL].sum().backward()
        self.opt.step()  # cells that have ended have no grad: Adam leaves them be
        for k in self.active:
            loop = self.loops[k]
            with torch.no_grad():
                loop.canvas.clamp_(0, 1)  # keep a valid image
            loop.update_average()
        return terms

    def end(self, k: int) -> None:
        self.results[k] = self.loops[k].finish()

    def run(self) -> list[Finished]:
        # While every cell runs, the step is always the same: it may be a CUDA graph. The
        # runner lives in this frame only: were the driver to hold it, the runner's step
        # (which refers to the driver) would close a reference cycle, and the graph's pool,
        # Adam's state and the objective would outlive the run until a full collection.
        full_step: StepRunner | None = StepRunner(
            lambda: [self.step(None)], self.device, self.graphs, self.loops[0].note
        )
        try:
            while self.active:
                if self.cancel.is_set():
                    self.cancel_all()
                    break
                if full_step is not None and len(self.active) < len(self.loops):
                    # A cell has ended: the full step will not run again. Its graph goes,
                    # with the grads it left in the graph's pool.
                    self.opt.zero_grad(set_to_none=True)
                    full_step.close()
                    full_step = None
                self.iterate(full_step)
        except Interrupted:  # cancelled between tiles: the step is dropped, nothing applied
            self.cancel_all()
        except torch.OutOfMemoryError:
            for k in [k for k in self.active if k not in self.results]:
                loop = self.loops[k]
                many = f"with {len(self.active)} canvases " if len(self.loops) > 1 else ""
                loop.status, loop.reason = (
                    "failed",
                    (
                        f"out of device memory {many}at size {loop.cfg.size}; try a smaller size"
                        f"{', fewer cells' if many else ''} or fewer/shallower layers"
                    ),
                )
                self.end(k)
        return [self.results[k] for k in range(len(self.loops))]

    def iterate(self, full_step: StepRunner | None) -> None:
        if full_step is not None:
            terms = full_step()[0]
        else:
            if self.index is None or len(self.index) != len(self.active):
                self.index = torch.tensor(self.active, device=self.objective.relu_mask.device)
            terms = self.step(self.index)
        still = []
        for row, k in enumerate(self.active):
            loop = self.loops[k]
            try:
                # Losses are of the canvas before this step (as optimizers report them);
                # the frame is the canvas after it.
                loop.after_step(terms[row].index_select(0, self.columns[k]))
            except _Stop:  # diverged or converged: this cell ends, the others go on
                self.end(k)
                continue
            if loop.done >= loop.cfg.iterations:
                self.end(k)
            else:
                still.append(k)
        self.active = still

    def cancel_all(self) -> None:
        for k in self.active:
            loop = self.loops[k]
            with contextlib.suppress(_Stop):  # it marks the loop cancelled
                loop.check_cancel()
            self.end(k)
        self.active = []
