"""Short names for a job's values: column and row headings, cell labels, one-line summaries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nst_tui.config import INITS, RUN_INIT, Config


def layers_label(kind: str, layers: Sequence[int], layer_type: str | None) -> str:
    """`content conv2_1`, `style conv1_1+conv2_1`; `content 2_1` when the type is swept."""
    if not layers:
        return f"no {kind}"
    prefix = layer_type or ""
    return f"{kind} " + "+".join(f"{prefix}{i + 1}_1" for i in layers)


def value_label(field: str, value: Any, layer_type: str | None = "conv") -> str:
    """A short heading for one value of a swept field."""
    if field in ("content_layers", "style_layers"):
        return layers_label(field.split("_")[0], value, layer_type)
    if field in ("optimizer", "layer_type", "device"):
        return str(value)
    if field == "pooling":
        return f"{value} pool"
    if field == "mode":
        return "reconstruct" if value == "reconstruct" else f"visualize {value}"
    if field == "init" and value.startswith(RUN_INIT):
        return f"init run {stem(value[len(RUN_INIT) :])}"
    if field == "init":
        return f"init {value if value in INITS else stem(value)}"
    if field in ("content_image", "style_image"):
        return f"{field.split('_')[0]} {stem(value)}"
    if field == "backbone":
        return stem(value) if value.endswith((".pth", ".pt")) else value
    if field == "style_weights":
        return "style weights " + ",".join(f"{w:g}" for w in value)
    if isinstance(value, bool):
        return f"{field.replace('_', ' ')} {'on' if value else 'off'}"
    if isinstance(value, float):
        return f"{field} {value:g}"
    return f"{field} {value}"


def stem(spec: str) -> str:
    return Path(spec.removeprefix("builtin:")).stem or spec


def describe(cfg: Config, skip: Sequence[str] = ()) -> str:
    """One line naming what every cell shares (images, size, length, method)."""
    parts = []
    if "content_image" not in skip and "style_image" not in skip:
        parts.append(f"{stem(cfg.content_image)} / {stem(cfg.style_image)}")
    for field, text in (
        ("size", f"{cfg.size} px"),
        ("iterations", f"{cfg.iterations} it"),
        ("optimizer", cfg.optimizer),
        ("init", value_label("init", cfg.init)),
        ("mode", value_label("mode", cfg.mode)),
        ("backbone", cfg.backbone),
    ):
        if field not in skip:
            parts.append(text)
    return " · ".join(parts)
