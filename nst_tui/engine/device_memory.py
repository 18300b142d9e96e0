"""The memory plan on the device a run got (nst_tui.memory is the plan itself, torch-free):
what the device has free (CUDA: `mem_get_info`; CPU: nst_tui.probe), the tile a scale
runs in, and the peak a batch measured.

Measured peaks: on CUDA `torch.cuda.max_memory_allocated` (the tensors, what the plan
predicts there); on a CPU the process's peak resident memory (VmHWM, reset at the batch's
start where Linux allows, else getrusage's ru_maxrss: the process's since it began).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nst_tui import probe
from nst_tui.config import Config, tiles_refused
from nst_tui.engine.accel import fast_bf16
from nst_tui.errors import RunError
from nst_tui.memory import Device, Fit, Plan, arch_of, plan
from nst_tui.sizes import show_bytes


def device_state(device: torch.device, weights_loaded: bool = False) -> Device:
    """The plan's view of `device` now (and, for CUDA, noted for the torch-free plan)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        used = torch.cuda.memory_allocated(index)
        # Blocks this process's allocator holds but no tensor uses are its to reuse.
        free += max(0, torch.cuda.memory_reserved(index) - used)
        name = f"cuda:{index}"
        bf16 = fast_bf16(torch.device(name))[0]
        probe.note_cuda(name, free, total, used, bf16)
        return Device(name, free, used, True, weights_loaded, bf16)
    bf16 = fast_bf16(device)[0]
    return Device("cpu", probe.available_ram(), probe.own_rss(), True, weights_loaded, bf16)


def note_auto(device: torch.device) -> None:
    """Tell the torch-free plan what `device = auto` means here, and what CUDA has free."""
    probe.note_auto(
        "cpu" if device.type == "cpu" else f"cuda:{device.index or 0}",
    )
    if device.type == "cuda":
        device_state(device)


def plan_canvas(
    cfgs: Sequence[Config],
    device: Device,
    height: int,
    width: int,
    styles: Sequence[tuple[int, int]] = (),
    arch: str | None = None,
) -> Plan:
    """The plan of a batch at one scale, from the canvas's own shape (its cells' size is
    its long edge) and the styles' (width, height)."""
    scaled = [c.replace(scales=[], size=max(height, width)) if c.scales else c for c in cfgs]
    return plan(
        scaled,
        (width, height),
        device,
        styles,
        arch or arch_of(cfgs[0].backbone),
        tiles_refused(cfgs[0]),
    )


def planned_fit(the_plan: Plan) -> Fit:
    """How the plan runs its (only) scale: as it is, recomputing blocks or in tiles;
    RunError (the plan's one line) when even the smallest tile does not fit."""
    scale = the_plan.last
    if scale.fit is None:
        raise RunError(the_plan.refusal())
    return scale.fit


@dataclass
class PeakMeter:
    """The peak memory of what runs between its start and `peak()`."""

    device: torch.device
    fresh: bool = True  # False: the CPU's peak is the process's since it began

    def start(self) -> PeakMeter:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.fresh = probe.reset_peak()
        return self

    def peak(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return probe.peak_rss()

    def how(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated"
        return "peak RSS of the process" + ("" if self.fresh else " since it started")

    def record(self, predicted: Plan | None) -> dict[str, object]:
        """run.json's `memory`: the plan's prediction beside the measured peak."""
        out: dict[str, object] = {}
        if predicted is not None:
            out.update(predicted.record())
        peak = self.peak()
        out["measured_peak_bytes"] = peak
        out["measured_peak"] = show_bytes(peak)
        out["measured_by"] = self.how()
        return out
