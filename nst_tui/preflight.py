"""Checks a run's inputs before torch loads (which takes seconds): a bad value, a
missing image or a weights file that is not one is refused at once.

Nothing here imports torch; `nst-tui run` calls `check_inputs` on every config it is
about to run (each cell of a sweep), then loads the engine. The engine checks again
as it loads (an image can be damaged past its header; a file can change meanwhile).
"""

from __future__ import annotations

from collections.abc import Iterable

from nst_tui.config import INITS, RUN_INIT, Config
from nst_tui.engine.images import check_image, run_final
from nst_tui.engine.weight_files import WeightFileError, check_weights_file, weights_path
from nst_tui.errors import BackboneError


def check_inputs(configs: Iterable[Config]) -> None:
    """Raise the NSTError the run would meet first for an image or weights file."""
    seen: set[tuple[str, str, int | None, str]] = set()
    for cfg in configs:
        style_size = max(1, round(cfg.size * cfg.style_scale))
        scaled = "style_image (size * style_scale)"  # as the engine words it
        images: list[tuple[str, str, int | None, str]] = [
            (cfg.content_image, "content_image", cfg.size, ""),
            (cfg.style_image, "style_image", style_size, scaled),
            *((path, "style_images", style_size, "") for path in cfg.style_images),
        ]
        if cfg.init.startswith(RUN_INIT):
            images.append((str(run_final(cfg.init[len(RUN_INIT) :])), "init", None, ""))
        elif cfg.init not in INITS:
            images.append((cfg.init, "init", None, ""))
        for item in images:
            if item not in seen:
                seen.add(item)
                check_image(*item)
        weights = ("", cfg.backbone, None, "")
        if cfg.backbone.endswith((".pth", ".pt")) and weights not in seen:
            seen.add(weights)
            try:
                check_weights_file(weights_path(cfg.backbone))
            except WeightFileError as exc:
                raise BackboneError(f"backbone {cfg.backbone!r}: {exc}") from None
