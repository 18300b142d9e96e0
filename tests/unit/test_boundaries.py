"""The boundaries a check enforces beside `lint-imports` (pyproject.toml's contracts):
no module imports itself through others, and what a user opens first loads no torch.

Torch takes seconds to import; `nst-tui --help`, `nst-tui presets` and the dashboard's
first screen (the form, its checks, the history) must not wait for it. Each runs in a
fresh interpreter, where nothing a test imported earlier can hide an import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]


def import_cycles(package: str) -> list[list[str]]:
    """Every group of the package's modules that import one another, directly or not
    (the strongly connected components of its import graph with more than one module)."""
    graph = grimp.build_graph(package)
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm; the graph is a few hundred edges
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in edges[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in modules:
        if module not in order:
            visit(module)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    # Lazy imports inside functions count: they close the loop as surely, only later.
    assert import_cycles("nst_tui") == []


def imported_by(*args: str) -> set[str]:
    """The top-level packages `python -X importtime -m nst_tui ARGS` imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "nst_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert lines, proc.stderr[-2000:]
    return {line.rpartition("|")[2].strip().partition(".")[0] for line in lines}


@pytest.mark.parametrize("args", [("--help",), ("presets",)], ids=" ".join)
def test_the_cli_s_quick_commands_load_no_torch(args: tuple[str, ...]) -> None:
    loaded = imported_by(*args)
    assert "nst_tui" in loaded  # the listing is read right
    assert not loaded & {"torch", "torchvision", "textual"}


FIRST_SCREEN = """
import asyncio, sys, tempfile
from pathlib import Path
from nst_tui.tui.app import NSTApp

async def main():
    app = NSTApp(outputs=Path(tempfile.mkdtemp()) / "outputs", warm_up=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert app.form.read()[0] == app.initial  # the form is up and filled in
        await pilot.press("tab", "tab")  # the form's checks run on the inputs
        await pilot.pause()
    print("torch" in sys.modules, "torchvision" in sys.modules)

asyncio.run(main())
"""


def test_the_dashboard_s_first_screen_loads_no_torch() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_SCREEN], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]
