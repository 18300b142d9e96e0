"""Checks a run's inputs before torch loads (which takes seconds): a bad value, a
missing image or a weights file that is not one is refused at once.

Nothing here imports torch; `nst-tui run` calls `check_inputs` on every config it is
about to run (each cell of a sweep), then loads the engine. The engine checks again
as it loads (an image can be damaged past its header; a file can change meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from nst_tui import memory
from nst_tui.config import INITS, RUN_INIT, Config, tiles_refused
from nst_tui.engine.images import check_fit, check_image, run_final
from nst_tui.engine.weight_files import WeightFileError, check_weights_file, weights_path
from nst_tui.errors import BackboneError, BudgetError
from nst_tui.memory import Device, Plan, plan
from nst_tui.probe import device_now


def check_inputs(configs: Iterable[Config], memory: bool = True) -> None:
    """Raise the NSTError the run would meet first for an image or weights file, or for an
    image too narrow for the size, for any of the scales, or for size * style_scale; then
    (`memory`) a run that nothing fits within its max_memory, where that can be told
    without torch (check_memory)."""
    opened: dict[tuple[str, str], tuple[int, int]] = {}
    planned: list[tuple[Config, tuple[int, int], list[tuple[int, int]]]] = []
    checked: set[tuple[object, ...]] = set()

    def header(spec: str, what: str) -> tuple[int, int]:
        if (spec, what) not in opened:
            opened[spec, what] = check_image(spec, what)
        return opened[spec, what]

    for cfg in configs:
        for spec, what in [
            (cfg.content_image, "content_image"),
            (cfg.style_image, "style_image"),
            *((path, "style_images") for path in cfg.style_images),
        ]:
            w, h = header(spec, what)
            for fit in fits(cfg, what):
                if (w, h, what, *fit) not in checked:
                    checked.add((w, h, what, *fit))
                    long_edge, setting, per, at = fit
                    named = f"scales: {what}" if setting == "scales" else what  # the field
                    check_fit(w, h, long_edge, named, setting=setting, per=per, at=at)
        if cfg.init.startswith(RUN_INIT):
            header(str(run_final(cfg.init[len(RUN_INIT) :])), "init")
        elif cfg.init not in INITS:
            header(cfg.init, "init")
        if cfg.backbone.endswith((".pth", ".pt")) and ("", cfg.backbone) not in checked:
            checked.add(("", cfg.backbone))
            try:
                check_weights_file(weights_path(cfg.backbone))
            except WeightFileError as exc:
                raise BackboneError(f"backbone {cfg.backbone!r}: {exc}") from None
        styles = [header(cfg.style_image, "style_image")]
        styles += [header(path, "style_images") for path in cfg.style_images]
        planned.append((cfg, header(cfg.content_image, "content_image"), styles))
    if memory:
        devices: dict[str, Device] = {}
        for cfg, content, styles in planned:
            if cfg.executor == "ray" and cfg.device != "cpu":
                continue  # a cluster's GPU: its worker plans there (job.lifecycle)
            if cfg.device not in devices:
                devices[cfg.device] = device_now(cfg.device)
            check_memory(memory_plan(cfg, content, styles, devices[cfg.device]))


def memory_plan(
    cfg: Config, content: tuple[int, int], styles: list[tuple[int, int]], device: Device
) -> Plan:
    """A run's memory plan from its images' headers (width, height) and its device."""
    return plan(cfg, content, device, styles, refused=tiles_refused(cfg))


def batch_fits() -> Callable[[Sequence[Config]], bool]:
    """job.plan's `fits`: whether a batch of cells fits its budget untiled, planned from
    their images' headers (read once) and their device now."""
    sizes: dict[str, tuple[int, int]] = {}
    devices: dict[str, Device] = {}

    def header(spec: str) -> tuple[int, int]:
        if spec not in sizes:
            sizes[spec] = check_image(spec, "image")
        return sizes[spec]

    def fits(cfgs: Sequence[Config]) -> bool:
        cfg = cfgs[0]
        if cfg.device not in devices:
            devices[cfg.device] = device_now(cfg.device)
        styles = [header(cfg.style_image), *(header(p) for p in cfg.style_images)]
        return memory.batch_fits(cfgs, header(cfg.content_image), devices[cfg.device], styles)

    return fits


def check_memory(the_plan: Plan) -> None:
    """BudgetError (one line: the budget, what the run needs, what to change) when nothing
    fits, not even the smallest tiles. A budget not known yet (auto on a GPU before torch
    has asked the driver) is checked on the device, when the run starts."""
    if not the_plan.fits:
        raise BudgetError(the_plan.refusal())


def fits(cfg: Config, what: str) -> list[tuple[int, str, float, str]]:
    """The long edges an image is scaled to, as check_fit's (size, setting, per, at): the
    content at size and at each of the scales; a style at size * style_scale, and so at
    each scale. The size first: the error a run would meet first."""
    ss = cfg.style_scale
    if what == "content_image":
        out = [(cfg.size, "size", 1.0, "")]
        out += [(s, "scales", 1.0, f"scale {s} of {list(cfg.scales)}") for s in cfg.scales]
        return out
    out = [
        (
            style_edge(cfg.size, ss),
            "style_scale",
            float(cfg.size),
            f"size {cfg.size} * style_scale {ss:g} = {style_edge(cfg.size, ss)} px",
        )
    ]
    out += [
        (
            style_edge(s, ss),
            "scales",
            ss,
            f"scale {s} of {list(cfg.scales)} * style_scale {ss:g} = {style_edge(s, ss)} px",
        )
        for s in cfg.scales
    ]
    return out


def style_edge(size: int, style_scale: float) -> int:
    """A style image's long edge at canvas `size` (as the engine scales it)."""
    return max(1, round(size * style_scale))
