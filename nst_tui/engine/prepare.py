"""Everything a run needs before its loop: device, weights, images, objective, canvas.

Weights are cached per process (a dashboard rerun does not reload them);
image errors are raised here, before any run folder exists.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from nst_tui.config import INITS, RUN_INIT, Config
from nst_tui.engine.backbones import Backbone, load_backbone
from nst_tui.engine.device_memory import device_state, plan_canvas, planned_fit
from nst_tui.engine.events import StatusFn, quiet
from nst_tui.engine.images import Note, fit_canvas, load_image
from nst_tui.engine.objective import Objective, cell_targets, conv_extractor
from nst_tui.engine.optimize import initial_canvas
from nst_tui.engine.tensors import to_tensor
from nst_tui.engine.tiles import TileWatch, effective_tile
from nst_tui.errors import RunError
from nst_tui.memory import Plan

_cache: dict[str, Backbone] = {}
_cache_lock = threading.Lock()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RunError(f"device {name!r}: CUDA is not available here; use cpu or auto")
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise RunError(
                f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    return torch.device(name)


def weights_held(name: str) -> bool:
    """Whether the backbone `name` is loaded in this process already (get_backbone)."""
    with _cache_lock:
        return name in _cache


def get_backbone(name: str, status: StatusFn = quiet) -> Backbone:
    """Load once per process; `auto` is remembered as what it resolved to."""
    with _cache_lock:
        if name not in _cache:
            status(f"loading weights: {name}", None)
            _cache[name] = load_backbone(name, status)
        return _cache[name]


@dataclass
class Prepared:
    """A batch ready to optimize: one network and objective, a canvas per cell."""

    device: torch.device
    backbone: Backbone
    objective: Objective
    canvases: list[torch.Tensor]
    notes: list[str] = field(default_factory=list)  # what was done unasked (a GIF's 1st frame)
    # The memory plan this batch runs by: made once the weights are in, so its tiles may
    # differ from a plan made before (the one a user saw first).
    plan: Plan | None = None

    @property
    def canvas(self) -> torch.Tensor:
        """The canvas of a batch of one."""
        (canvas,) = self.canvases
        return canvas


def load_inputs(
    cfg: Config, device: torch.device, note: Note | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Content at `size` on its long edge, style at `size * style_scale` on its own, and
    the init image (style, a run's final.png or a file) resized from full resolution to
    the canvas."""
    note = note or (lambda text: None)
    content_full = load_image(cfg.content_image, "content_image", note)
    style_full = load_image(cfg.style_image, "style_image", note)
    content = fit_canvas(content_full, cfg.size, "content_image")
    style_size = max(1, round(cfg.size * cfg.style_scale))
    style = fit_canvas(style_full, style_size, "style_image", style_of=cfg)
    init = None
    if cfg.init == "style":
        init = style_full
    elif cfg.init.startswith(RUN_INIT):
        init = load_image(str(run_final(cfg.init[len(RUN_INIT) :])), "init", note)
    elif cfg.init not in INITS:
        init = load_image(cfg.init, "init", note)
    if init is not None:
        init = init.resize(content.size, Image.Resampling.LANCZOS)
    return (
        to_tensor(content, device),
        to_tensor(style, device),
        None if init is None else to_tensor(init, device),
    )


def load_extra_styles(
    cfg: Config, device: torch.device, note: Note | None = None
) -> list[torch.Tensor]:
    """style_images, each at `size * style_scale` on its long edge, like style_image."""
    note = note or (lambda text: None)
    style_size = max(1, round(cfg.size * cfg.style_scale))
    return [
        to_tensor(
            fit_canvas(load_image(path, "style_images", note), style_size, "style_images", cfg),
            device,
        )
        for path in cfg.style_images
    ]


def load_all_inputs(cfgs: Sequence[Config]) -> None:
    """Load every image the configs name (each distinct set once): ImageError before
    any folder exists, not minutes into a sweep."""
    checked: set[tuple[object, ...]] = set()
    for cfg in cfgs:
        key = (cfg.device, cfg.content_image, cfg.style_image, cfg.style_images, cfg.init, cfg.size)
        if key not in checked:
            checked.add(key)
            device = resolve_device(cfg.device)
            load_inputs(cfg, device)
            load_extra_styles(cfg, device)


def upsample(canvas: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    # Bilinear, antialiased: it also serves a scale list that goes down somewhere.
    out = torch.nn.functional.interpolate(
        canvas, size=tuple(size), mode="bilinear", align_corners=False, antialias=True
    )
    return out.clamp(0, 1)


def run_final(folder_text: str) -> Path:
    """The final.png of the run folder `init = "run:FOLDER"` names; a failed or
    interrupted run is refused (images.run_final, which needs no torch)."""
    from nst_tui.engine.images import run_final as checked_final

    return checked_final(folder_text)


def prepare(
    cfgs: Config | Sequence[Config],
    status: StatusFn = quiet,
    init_canvas: torch.Tensor | None = None,
    cancel: threading.Event | None = None,
) -> Prepared:
    """Device, weights, images, targets and canvases of one batch (a single run: a
    batch of one). The cells share the network: equal batch_key (nst_tui.job.plan).

    `init_canvas` (a coarser scale's canvas, 1x3xHxW in 0..1; a batch of one only)
    overrides cfg.init: it is resized to this size's canvas and optimized from. A targets'
    pass in tiles reports its progress to `status`, and raises tiles.Interrupted between two
    windows once `cancel` is set.
    """
    cfgs = [cfgs] if isinstance(cfgs, Config) else list(cfgs)
    device = resolve_device(cfgs[0].device)
    notes: list[str] = []
    inputs = []
    for cfg in cfgs:  # image errors before the weights load
        content, style, init = load_inputs(cfg, device, notes.append)
        if init_canvas is not None:
            init = upsample(init_canvas.detach().to(device), content.shape[-2:])
        inputs.append((cfg, content, style, init, load_extra_styles(cfg, device, notes.append)))
    for text in dict.fromkeys(notes):
        status(text, None)
    backbone = get_backbone(cfgs[0].backbone, status)
    height, width = inputs[0][1].shape[-2:]  # the content's: every canvas's shape
    # The memory plan on this device: as it is where it fits, else recomputing each block
    # in the backward pass, else the largest tile that fits (a RunError saying why when
    # nothing does); in tiles the targets are too.
    planned = plan_canvas(
        cfgs,
        device_state(device, weights_loaded=True),
        height,
        width,
        [(s.shape[-1], s.shape[-2]) for s in (inputs[0][2], *inputs[0][4])],
        backbone.arch,
    )
    status(f"memory: {planned.line()}", None)
    fit = planned_fit(planned)
    tile = effective_tile(cfgs[0], height, width, fit.tile)  # shared by the batch
    extractor, accel = conv_extractor(backbone, cfgs, device)
    watch = TileWatch(cancel, status)
    targets, canvases = [], []
    for cfg, content, style, init, extra_styles in inputs:
        targets.append(
            cell_targets(extractor, accel, cfg, content, style, extra_styles, tile, watch)
        )
        canvases.append(initial_canvas(cfg, content, init))
    objective = Objective(extractor, accel, targets, tile, fit.recompute)
    if objective.recompute:
        status("recomputing each VGG block in the backward pass: the same gradient", None)
    if tile:
        status(f"exact tiled gradients: {objective.plan(canvases[0]).describe()}", None)
    return Prepared(device, backbone, objective, canvases, notes, planned)
