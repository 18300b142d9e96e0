"""`nst-tui`: no subcommand opens the dashboard; `run`, `presets`, `fields`, `compare` work
headless.

Errors a user can fix print one line and exit 2; a run that fails (diverges)
exits 1, a cancelled one 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from nst_tui.config import OUTPUTS, PARAMS, Config, parse_assignment
from nst_tui.errors import BudgetError, ConfigError, NSTError, PresetError, RunError
from nst_tui.job.stop import NOW, SAYS, escalate
from nst_tui.parameters import allowed, listing, page
from nst_tui.text import visible

if TYPE_CHECKING:
    from nst_tui.job.plan import Job

EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst-tui",
        description="Neural style transfer research dashboard. "
        "Without a command, opens the dashboard.",
    )
    parser.add_argument("--preset", help="open the dashboard with this preset (name or path)")
    parser.add_argument("--run", action="store_true", help="start the preset at once")
    parser.add_argument(
        "--graphics",
        choices=("auto", "sixel", "kitty", "blocks"),
        help="how the dashboard draws pictures: auto (default; real pixels where the terminal "
        "shows them, with nst-tui[images]), sixel, kitty, or blocks (half blocks); "
        "also NST_TUI_GRAPHICS",
    )
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run one experiment (or a preset's sweep) headless")
    run.add_argument("--preset", help="preset name or TOML path (default: default)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field; VALUE is TOML (--set content_layers=[1] --set optimizer=lbfgs); "
        "`nst-tui fields` lists every KEY with its type, default and range",
    )
    run.add_argument("--out", default=str(OUTPUTS), help=f"outputs folder (default: {OUTPUTS})")
    run.add_argument("--device", help=allowed("device"))
    run.add_argument("--backbone", help=allowed("backbone"))
    run.add_argument("--init", help=f"{allowed('init')} (run:FOLDER continues that run)")
    run.add_argument(
        "--executor",
        choices=PARAMS["executor"].choices,
        help="where the cells run: local (this process) or ray (pip install 'nst-tui[ray]')",
    )
    run.add_argument(
        "--address",
        help=f'ray: {allowed("ray_address")} (default "": start a local Ray)',
    )
    run.add_argument("--json", action="store_true", help="last line: a JSON summary")
    run.add_argument(
        "--plan",
        action="store_true",
        help="print the memory plan (each scale's predicted peak, the budget, the tiles) and "
        "the work per iteration, then exit without running",
    )

    sub.add_parser("presets", help="list the presets")

    fields = sub.add_parser("fields", help="every config field: type, default, range, help")
    fields.add_argument("--markdown", action="store_true", help="as docs/parameters.md")

    compare = sub.add_parser("compare", help="two runs' final images side by side, labelled")
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="a run folder")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="another run folder")
    compare.add_argument(
        "--out",
        help="image to write (.png, .jpg, .webp, ...) or a folder to write it into "
        "(default: compare-A-B.png here; never overwritten)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # User values (paths, preset names, messages quoting them) print as written: no
    # markup (each is escaped), no :name: emoji, no highlighting.
    err = QuietWhenGone(stderr=True, highlight=False, emoji=False)
    try:
        check_not_empty(args)
        if args.command == "run":
            return cmd_run(args, err)
        if args.command == "presets":
            return cmd_presets()
        if args.command == "fields":
            print(page() if args.markdown else listing(), end="")
            return 0
        if args.command == "compare":
            from nst_tui.compare import compare

            out = None if args.out is None else Path(args.out)
            print(compare(args.run_a, args.run_b, out))
            return 0
        from nst_tui.tui import graphics

        # The terminal is asked before Textual reads its input (textual-image's queries).
        graphics.use(graphics.detect(graphics.mode_from(args.graphics, os.environ)))
        from nst_tui.tui.app import run_dashboard  # textual only when the dashboard opens

        return run_dashboard(preset=args.preset, start=args.run)
    except NSTError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C: the record is already written
        return EXIT_CANCELLED


def check_not_empty(args: argparse.Namespace) -> None:
    """`--preset ""` would quietly run `default`, `--out ""` write into the working folder."""
    if getattr(args, "preset", None) is not None and not args.preset.strip():
        raise PresetError("--preset: empty; name a preset (see `nst-tui presets`) or a TOML file")
    if getattr(args, "out", None) is not None and not args.out.strip():
        what = (
            "a folder for the run folders" if args.command == "run" else "an image file or a folder"
        )
        raise RunError(f"--out: empty; name {what}, or leave --out out for the default")


# `run`'s options that set a field: field -> option (--address sets ray_address).
FLAGS = {
    "device": "device",
    "backbone": "backbone",
    "init": "init",
    "executor": "executor",
    "ray_address": "address",
}


def overrides(sets: Sequence[str], flags: dict[str, Any]) -> dict[str, Any]:
    """The fields that --set and the flags fix, in the order they apply."""
    values: dict[str, Any] = {}
    for text in sets:
        key, value = parse_assignment(text)
        values[key] = value
    values.update({k: v for k, v in flags.items() if v is not None})
    return values


def apply_overrides(
    cfg: Config, values: dict[str, Any], flag_fields: dict[str, str] | None = None
) -> Config:
    """The preset's config with `values`; an error in a field that a flag given on the
    command line set names that flag (`--device: ...`), the others `--set`."""
    merged = {**cfg.to_dict(), **values}
    if merged == cfg.to_dict():
        return cfg
    try:
        return Config.from_dict(merged, "--set")
    except ConfigError as exc:
        options = flag_fields or {}
        flagged = {f"--{options[k]}": v for k, v in exc.errors.items() if k in options}
        if not flagged:
            raise
        rest = {f"--set {k}": v for k, v in exc.errors.items() if k not in options}
        raise ConfigError({**flagged, **rest}) from None


def cmd_presets() -> int:
    """One line per preset: its name and its description's first sentence, shown as text
    (control characters escaped, not sent to the terminal) and cut to the terminal's
    width; a preset `run` would refuse is marked invalid, with the reason."""
    from nst_tui import presets
    from nst_tui.job.plan import expand
    from nst_tui.preflight import check_inputs

    out = Console(highlight=False, emoji=False)
    paths = presets.all_paths()
    width = max((len(p.stem) for p in paths), default=0) + 2
    for path in paths:
        name = Text(visible(path.stem).ljust(width), style="bold")
        try:
            p = presets.load(str(path))
            configs = (
                [c.config for c in expand(p.config, p.sweep, p.name).cells]
                if p.sweep
                else [p.config]
            )
            check_inputs(configs)
            line = Text(visible(first_sentence(p.description)))
        except NSTError as exc:
            line = Text(f"(invalid: {visible(' '.join(str(exc).split()))})", style="red")
        row = name + line
        row.truncate(max(out.width, width + 10), overflow="ellipsis")
        out.print(row, no_wrap=True, overflow="ellipsis", crop=False)
    return 0


def first_sentence(text: str) -> str:
    """A description's first sentence, on one line."""
    flat = " ".join(text.split())
    return re.split(r"\.\s+(?=[A-Z])", flat, maxsplit=1)[0].rstrip(".") if flat else "-"


def cmd_run(args: argparse.Namespace, err: Console) -> int:
    # Everything a user can get wrong is checked before torch loads (seconds): the
    # preset, the values, the sweep's cells, the images' files and a .pth's bytes.
    from nst_tui import presets
    from nst_tui.job.plan import job_for, without
    from nst_tui.preflight import check_inputs

    preset = presets.load(args.preset or "default")
    flags = {field: getattr(args, option) for field, option in FLAGS.items()}
    fixed = overrides(args.set, flags)
    given = {field: option for field, option in FLAGS.items() if flags[field] is not None}
    name, cfg = preset.name, apply_overrides(preset.config, fixed, given)
    if args.address is not None and cfg.executor != "ray":
        raise NSTError("--address names a Ray cluster: add --executor ray")
    table = without(preset.sweep, list(fixed)) if preset.sweep else None  # --set: every cell
    if preset.sweep and not table:
        err.print("[dim]--set fixes every swept field: one run, no sweep[/]")
    job = job_for(cfg, table, name)  # run_job records its paths absolute (Job.absolute)
    if args.plan:
        return print_plan(job, args.json)
    check_inputs(cell.config for cell in job.cells)
    from nst_tui.cli_progress import JobView
    from nst_tui.engine.events import pace
    from nst_tui.job.executor import executor_named
    from nst_tui.job.run import run_job  # loads torch

    executor = executor_named(cfg.executor, cfg.ray_address)  # not installed: before the bar
    cancel, hurry = threading.Event(), threading.Event()
    restore = _on_signals(cancel, hurry, err)
    try:
        with JobView(err, job) as view:
            result = run_job(
                job,
                out_root=Path(args.out),
                label=name,
                listeners=[view],
                cancel=cancel,
                executor=executor,
                hurry=hurry,
            )
    finally:
        restore()
    if job.is_sweep:
        for cell in result.cells:
            if cell.finished.status == "failed":
                label, reason = escape(cell.cell.label), escape(cell.finished.reason)
                err.print(f"[yellow]{label}: failed:[/] {reason}")
        err.print(
            f"[dim]{result.status}: {result.cell_iterations} cell-iterations in "
            f"{result.wall_time:.1f} s ({pace(result.cell_it_per_s, 'cell-it')})[/]"
        )
        converged = sum(c.finished.converged for c in result.cells)
        if converged:
            err.print(f"[dim]{converged} of {len(result.cells)} cells converged early[/]")
    elif result.status != "finished":
        err.print(f"[yellow]{result.status}:[/] {escape(result.finished.reason)}", soft_wrap=True)
    elif result.finished.converged:  # the stop_change rule: where and why
        err.print(f"[dim]{escape(result.finished.reason)}[/]", soft_wrap=True)
    if args.json:
        record = "sweep.json" if job.is_sweep else "run.json"
        summary = json.loads((result.folder / record).read_text())
        answer(json.dumps({**summary, "folder": str(result.folder)}))
    else:
        answer(str(result.folder))
    return {"finished": 0, "cancelled": EXIT_CANCELLED}.get(result.status, EXIT_FAILED)


def answer(text: str) -> None:
    """The command's answer on stdout. Where its reader is gone (a closed pipe, a dropped
    session), nothing, and the exit status stays the run's: Python's note on SIGPIPE
    (stdout pointed at /dev/null, so that flushing it at exit does not fail too)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def print_plan(job: Job, as_json: bool) -> int:
    """`run --plan`: each batch's memory plan (a single run: one), from the images' headers
    and the device's figures now; exit 2 with the reason when a run cannot fit."""
    from nst_tui.engine.images import check_image
    from nst_tui.job.plan import plan_batches
    from nst_tui.memory import plan
    from nst_tui.preflight import batch_fits, check_inputs, memory_plan
    from nst_tui.probe import device_now

    check_inputs((cell.config for cell in job.cells), memory=False)
    _probe_cuda(job)
    local = job.base.executor == "local"
    batches = plan_batches(job, fits=batch_fits() if local else None)
    plans = []
    for batch in batches:
        cfgs = [job.cells[i].config for i in batch.cells]
        first = cfgs[0]
        content = check_image(first.content_image, "content_image")
        styles = [check_image(p, "style_images") for p in (first.style_image, *first.style_images)]
        the_plan = memory_plan(first, content, styles, device_now(first.device))
        if len(cfgs) > 1:
            the_plan = plan(cfgs, content, the_plan.device, styles, refused=the_plan.refused)
        plans.append((batch, the_plan))
    out = Console(highlight=False, emoji=False, soft_wrap=True)
    if as_json:
        records = [{"cells": list(b.cells), **p.record(), "fits": p.fits} for b, p in plans]
        print(json.dumps({"plans": records}))
    else:
        for batch, the_plan in plans:
            indent = ""
            if job.is_sweep:
                cells = ", ".join(str(i) for i in batch.cells)
                out.print(f"cells {cells}" + (" (one batch)" if batch.batched else ""))
                indent = "  "
            for line in the_plan.lines():
                out.print(Text(indent + line))
    refused = next((p for _, p in plans if not p.fits), None)
    if refused is not None:
        raise BudgetError(refused.refusal())
    return 0


def _probe_cuda(job: Job) -> None:
    """Ask the driver what a CUDA device has free (loads torch) where the plan needs it:
    a budget of auto on a GPU. A CPU's figures need no torch."""
    from nst_tui.probe import device_now

    wanted = {
        c.config.device
        for c in job.cells
        if c.config.max_memory.strip().lower() == "auto"
        and device_now(c.config.device).cuda
        and device_now(c.config.device).free is None
    }
    if not wanted:
        return
    from nst_tui.engine.device_memory import device_state, note_auto
    from nst_tui.engine.prepare import resolve_device

    for spec in wanted:
        device = resolve_device(spec)
        if spec == "auto":
            note_auto(device)  # and what CUDA has free, where auto is a GPU
        elif device.type == "cuda":
            device_state(device)


class QuietWhenGone(Console):
    """A console that falls silent when its terminal goes (an SSH session dropping: the
    pipe breaks). Rich's own raises SystemExit(1) from wherever that write was, in the
    middle of a step or of saving the record the run must still write."""

    def on_broken_pipe(self) -> None:
        self.quiet = True


def _on_signals(cancel: threading.Event, hurry: threading.Event, err: Console) -> Any:
    """Ctrl-C, SIGTERM and SIGHUP stop the job as nst_tui/job/stop.py says: cancel, then
    hurry, then at once (KeyboardInterrupt, where it is).

    The handler only takes the step and queues what to say; a thread of its own says it.
    Printing in the handler, which runs wherever the main thread was, could wait forever
    on a console lock: the main thread may hold it mid-write while the bar's refresh
    thread holds the bar's lock and waits for the console's."""
    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    notices: queue.SimpleQueue[str | None] = queue.SimpleQueue()  # put() is reentrant

    def handler(signum: int, frame: FrameType | None) -> None:
        step = escalate(cancel, hurry)
        if step == NOW:
            raise KeyboardInterrupt
        notices.put(f"{signal.Signals(signum).name}: {SAYS[step]}")

    def say() -> None:
        while (notice := notices.get()) is not None:
            with contextlib.suppress(OSError):  # SIGHUP: the terminal may be gone
                err.print(f"[yellow]{escape(notice)}[/]")

    teller = threading.Thread(target=say, name="signal-notices", daemon=True)
    teller.start()
    old = {s: signal.signal(s, handler) for s in sigs}

    def restore() -> None:
        for sig, was in old.items():
            signal.signal(sig, was)
        notices.put(None)
        teller.join(timeout=2)  # what is queued is said before the command's last lines

    return restore


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
