"""Sizes in bytes as a user writes them (`6GiB`, `512 MiB`, `1.5GB`) and as the plan shows
them. Plain Python: the config's checks read it before anything else loads."""

from __future__ import annotations

import math
import re

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
# The units a size may be written in: binary (KiB = 1024 B) and decimal (kB = 1000 B), as
# IEC and SI name them; case does not matter ("6gib", "6 GiB"). A bare number is not a
# size (bytes? GiB?): the unit is always written.
UNITS: dict[str, int] = {
    "b": 1,
    "kib": KiB,
    "mib": MiB,
    "gib": GiB,
    "tib": TiB,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
}
UNIT_NAMES = "B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB: powers of 1000)"
AUTO = "auto"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([^\d\s.][^\s]*)?\s*$")


def parse_size(text: str) -> int:
    """`6GiB`, `512 MiB`, `1.5GB` -> bytes; ValueError saying what a size looks like."""
    shown = " ".join(text.split())
    example = 'e.g. "6GiB" or "512MiB"'
    found = _SIZE.match(text)
    if not found:
        raise ValueError(f"{shown!r} is not a size: a number and a unit, {example}")
    number, unit = found.groups()
    if not unit:
        raise ValueError(f"{shown!r} has no unit: use {UNIT_NAMES}, {example}")
    if unit.lower() not in UNITS:
        raise ValueError(f"{shown!r} is not a size: use {UNIT_NAMES}, {example}")
    value = float(number) * UNITS[unit.lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{shown!r} is not a size: it must be 1 B or more")
    return int(value)


def parse_budget(text: str) -> int | None:
    """A memory budget (max_memory) as bytes; None for `auto`."""
    if text.strip().lower() == AUTO:
        return None
    return parse_size(text)


def budget_problem(text: str) -> str:
    """Why `text` is not a memory budget ("" when it is one)."""
    try:
        parse_budget(text)
    except ValueError as exc:
        return f"{exc}; or auto (a safe share of what the device has free)"
    return ""


def show_bytes(n: float) -> str:
    """1536 MiB -> '1.5 GiB': binary units, the one the number reads best in."""
    for unit, size in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"
