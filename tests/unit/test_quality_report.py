"""benchmarks/quality_report.py: the must-show verdicts and the time to the peer's
quality, read from a benchmark JSON."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from quality_report import by_key, must_show, time_to_peer, verdicts


def snap(budget: float, content: float, style: float, artifacts: float = 1.0) -> dict:
    return {"budget": budget, "content": content, "style": style, "artifacts": artifacts,
            "iterations": 10, "elapsed": budget}  # fmt: skip


def run(recipe: str, *snaps: dict) -> dict:
    return {"recipe": recipe, "pair": "a:b", "size": 64, "snapshots": list(snaps)}


def test_verdicts_need_better_on_one_distance_and_no_worse_on_the_other() -> None:
    peer = snap(30, 1.0, 0.5)
    assert verdicts(snap(30, 0.9, 0.5), None, peer)["against the peer"] is True
    assert verdicts(snap(30, 0.9, 0.6), None, peer)["against the peer"] is False
    assert verdicts(snap(30, 1.0, 0.5), None, peer)["against the peer"] is False  # a tie
    study = snap(30, 2.0, 0.3)
    v = verdicts(snap(30, 2.0, 0.3, artifacts=1.6), study, None)
    assert v["style below the study's"] is False  # equal is not lower
    assert v["content no worse than the study's"] is True
    assert v["artifacts within 1.5x"] is False
    assert v["against the peer"] is None  # missing, not met


def test_must_show_counts_every_test_from_the_first_budget_on() -> None:
    table = by_key(
        [
            run("default", snap(15, 0.5, 0.1), snap(30, 0.5, 0.1), snap(60, 0.5, 0.4)),
            run("study", snap(15, 1, 1), snap(30, 1, 1), snap(60, 1, 0.3)),
            run("peer", snap(15, 1, 1), snap(30, 1, 1), snap(60, 1, 0.3)),
        ]
    )
    lines, met, total = must_show(table, "default", "study", "peer", 30)
    assert total == 8  # two budgets (15 s is before --from), four tests each
    # At 60 s the style is worse than both the study's and the peer's: two tests fail
    # there (content and artifacts still hold).
    assert met == 6
    assert sum(line.count("**not met**") for line in lines) == 2


def test_time_to_peer_is_the_first_budget_at_least_as_good_on_both() -> None:
    table = by_key(
        [
            run("fast", snap(5, 0.9, 0.6), snap(10, 0.8, 0.2), snap(60, 0.8, 0.1)),
            run("slow", snap(5, 2, 2), snap(60, 2, 0.1)),
            run("peer", snap(60, 1.0, 0.3)),
        ]
    )
    lines = "\n".join(time_to_peer(table, "peer"))
    assert "| fast | a:b | 64 | 1.000 / 0.300 | ≤ 10 s |" in lines
    assert "| slow | a:b | 64 | 1.000 / 0.300 | not within 60 s |" in lines
