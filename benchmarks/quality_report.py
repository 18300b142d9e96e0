"""The quality tables of benchmarks/README.md from what benchmarks/quality.py measured.

    python benchmarks/quality_report.py benchmarks/results/quality-cpu.json [--from 30]
        [--chosen default] [--baseline study] [--peer peer]

Prints markdown: the must-show table (for every pair, size and budget from --from on:
the chosen recipe against the study's and against the peer's, each test met or not),
the time each recipe takes to reach the peer's quality at 60 s, and every recipe's
distances at every budget. It reads the JSON only; nothing is run or rounded in favour
of anyone: a missing run or budget is reported as missing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ARTIFACT_LIMIT = 1.5  # the result's high-frequency energy at most 1.5x the style image's
PEER_REFERENCE_S = 60.0  # the peer's budget whose quality the others race to


def by_key(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[float, dict]]:
    """(recipe, pair, size) -> {budget: snapshot}."""
    table: dict[tuple[str, str, int], dict[float, dict]] = {}
    for run in runs:
        snaps = {s["budget"]: s for s in run["snapshots"]}
        table[(run["recipe"], run["pair"], run["size"])] = snaps
    return table


def verdicts(chosen: dict, baseline: dict | None, peer: dict | None) -> dict[str, bool | None]:
    """The must-show tests at one budget (None: the run to compare with is missing)."""
    study = baseline
    out: dict[str, bool | None] = {
        "style below the study's": None if study is None else chosen["style"] < study["style"],
        "content no worse than the study's": (
            None if study is None else chosen["content"] <= study["content"]
        ),
        f"artifacts within {ARTIFACT_LIMIT}x": chosen["artifacts"] <= ARTIFACT_LIMIT,
    }
    if peer is None:
        out["against the peer"] = None
    else:
        better = [chosen[k] < peer[k] for k in ("content", "style")]
        no_worse = [chosen[k] <= peer[k] for k in ("content", "style")]
        out["against the peer"] = any(better) and all(no_worse)
    return out


def mark(value: bool | None) -> str:
    return "—" if value is None else ("met" if value else "**not met**")


def must_show(
    table: dict, chosen: str, baseline: str, peer: str, start: float
) -> tuple[list[str], int, int]:
    lines = [
        f"| pair | size | budget | {chosen} content / style / artif. | {baseline} content / style "
        f"| {peer} content / style | style < {baseline} | content ≤ {baseline} "
        f"| artif. ≤ {ARTIFACT_LIMIT} | vs {peer} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    met = total = 0
    for (recipe, pair, size), snaps in sorted(table.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        if recipe != chosen:
            continue
        for budget, snap in sorted(snaps.items()):
            if budget < start:
                continue
            base = table.get((baseline, pair, size), {}).get(budget)
            other = table.get((peer, pair, size), {}).get(budget)
            tests = verdicts(snap, base, other)
            total += len(tests)
            met += sum(1 for v in tests.values() if v)

            def pair_text(s: dict | None) -> str:
                return "missing" if s is None else f"{s['content']:.3f} / {s['style']:.3f}"

            lines.append(
                f"| {pair} | {size} | {budget:g} s | {snap['content']:.3f} / {snap['style']:.3f}"
                f" / {snap['artifacts']:.2f} | {pair_text(base)} | {pair_text(other)} | "
                + " | ".join(mark(v) for v in tests.values())
                + " |"
            )
    return lines, met, total


def time_to_peer(table: dict, peer: str) -> list[str]:
    """Per recipe, pair and size: the first budget whose picture is at least as good as
    the peer's at PEER_REFERENCE_S on both distances (an upper bound: budgets are coarse)."""
    lines = [
        f"| recipe | pair | size | peer at {PEER_REFERENCE_S:g} s (content / style) | reached by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (recipe, pair, size), snaps in sorted(table.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        reference = table.get((peer, pair, size), {}).get(PEER_REFERENCE_S)
        if recipe == peer or reference is None:
            continue
        reached = next(
            (
                b
                for b, s in sorted(snaps.items())
                if s["content"] <= reference["content"] and s["style"] <= reference["style"]
            ),
            None,
        )
        last = max(snaps) if snaps else 0
        when = f"≤ {reached:g} s" if reached is not None else f"not within {last:g} s"
        lines.append(
            f"| {recipe} | {pair} | {size} | {reference['content']:.3f} / "
            f"{reference['style']:.3f} | {when} |"
        )
    return lines


def every_budget(table: dict) -> list[str]:
    budgets = sorted({b for snaps in table.values() for b in snaps})
    lines = [
        "| recipe | pair | size | " + " | ".join(f"{b:g} s" for b in budgets) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in budgets) + " |",
    ]
    for (recipe, pair, size), snaps in sorted(table.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        cells = [
            "missing"
            if (s := snaps.get(b)) is None
            else f"{s['content']:.2f} / {s['style']:.3f} / {s['artifacts']:.2f} ({s['iterations']})"
            for b in budgets
        ]
        lines.append(f"| {recipe} | {pair} | {size} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--from", dest="start", type=float, default=30.0, help="first budget")
    parser.add_argument("--chosen", default="default")
    parser.add_argument("--baseline", default="study")
    parser.add_argument("--peer", default="peer")
    args = parser.parse_args()
    result = json.loads(args.json.read_text())
    table = by_key(result["runs"])
    print(f"Measured {result['date']} on {result['device']}, torch {result['torch']}, "
          f"{result['threads']} threads.\n")  # fmt: skip
    lines, met, total = must_show(table, args.chosen, args.baseline, args.peer, args.start)
    if total:
        print(f"Must show ({met} of {total} tests met):\n")
        print("\n".join(lines) + "\n")
    print(f"Time to reach the peer's quality at {PEER_REFERENCE_S:g} s:\n")
    print("\n".join(time_to_peer(table, args.peer)) + "\n")
    print("Every recipe, content / style / artifacts (iterations) at each budget:\n")
    print("\n".join(every_budget(table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
