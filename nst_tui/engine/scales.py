"""Coarse-to-fine runs: optimize at each of cfg.scales, each started from the last one's
canvas upsampled, as one run with one iteration count and one record."""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import torch

from nst_tui.config import Config
from nst_tui.engine.events import Emit, Event, Finished, Frame, Progress, StatusFn, quiet
from nst_tui.engine.optimize import Moments, optimize
from nst_tui.engine.prepare import Prepared, prepare
from nst_tui.engine.tiles import Interrupted


def scale_configs(cfg: Config) -> list[Config]:
    """One config per scale (its size, no scales); [cfg] for a single-scale run."""
    if not cfg.scales:
        return [cfg]
    return [cfg.replace(size=size, scales=[]) for size in cfg.scales]


def optimize_scales(
    first: Prepared,
    cfg: Config,
    emit: Emit,
    cancel: threading.Event | None = None,
    status: StatusFn = quiet,
    configs: list[Config] | None = None,
) -> Finished:
    """Run every scale of `cfg`; `first` is prepare(scale_configs(cfg)[0]).

    Events carry iteration numbers that go on across scales (out of the total of all
    scales), so a run's losses and frames read as one run; only the last scale's (or a
    scale that did not finish) Finished is emitted. `configs` replaces
    scale_configs(cfg) (the quality benchmark runs its last scale until a cancel).
    """
    configs = configs or scale_configs(cfg)
    if len(configs) == 1:
        return optimize(first.objective, first.canvases, [emit], cancel)[0]
    total = sum(c.iterations for c in configs)
    offset, wall = 0, 0.0
    prepared = first
    del first  # only `prepared` refers to the scale being run, so the switch frees it
    moments = Moments() if cfg.carry_moments and cfg.optimizer == "adam" else None
    fin: Finished | None = None  # the last scale's end
    for k, scale_cfg in enumerate(configs):
        if fin is not None:
            canvas = prepared.canvas.detach()
            device = prepared.device
            del prepared  # the coarser scale's objective goes before the finer one comes
            if device.type == "cuda":
                # Its memory (its graph's private pool among it) goes back to the device:
                # the allocator would keep it reserved, and the finer scale needs more.
                torch.cuda.empty_cache()
            with contextlib.suppress(Interrupted):  # in the targets' pass in tiles
                prepared = prepare(scale_cfg, status, init_canvas=canvas, cancel=cancel)
            if cancel is not None and cancel.is_set():
                # Before this scale's first step: the run ends with the last scale's picture.
                reason = f"cancelled at iteration {offset} (before scale {scale_cfg.size} px)"
                fin = dataclasses.replace(fin, status="cancelled", converged=False)
                return _ended(emit, fin, reason, offset, wall)
        status(f"scale {k + 1}/{len(configs)}: {scale_cfg.size} px", None)
        ended: list[Finished] = []
        shift = _shifted(emit, ended, offset, wall, total)
        optimize(prepared.objective, prepared.canvases, [shift], cancel, moments)
        fin = ended[0]
        offset += fin.iterations_done
        wall += fin.wall_time
        if fin.status != "finished" or k == len(configs) - 1:
            reason = fin.reason + (f" (scale {scale_cfg.size} px)" if fin.reason else "")
            return _ended(emit, fin, reason, offset, wall)
    raise AssertionError("unreachable: the last scale returns")  # pragma: no cover


def _ended(emit: Emit, fin: Finished, reason: str, done: int, wall: float) -> Finished:
    """The whole run's Finished, from the scale it ended in, emitted."""
    whole = dataclasses.replace(
        fin, reason=reason, iterations_done=done, wall_time=wall, it_per_s=done / max(wall, 1e-9)
    )
    emit(whole)
    return whole


def _shifted(emit: Emit, ended: list[Finished], offset: int, wall: float, total: int) -> Emit:
    def shift(event: Event) -> None:
        if isinstance(event, Progress):
            elapsed = wall + event.elapsed
            iteration = offset + event.iteration
            emit(
                dataclasses.replace(
                    event,
                    iteration=iteration,
                    total=total,
                    elapsed=elapsed,
                    it_per_s=iteration / max(elapsed, 1e-9),
                    # Each scale's iterations do different work: no one figure.
                    tflop_s=None,
                    of_peak=None,
                )
            )
        elif isinstance(event, Frame):
            emit(dataclasses.replace(event, iteration=offset + event.iteration))
        elif isinstance(event, Finished):
            ended.append(event)
        else:
            emit(event)

    return shift
