"""A job's news merges in one place, field by field: no row and no field is lost, and a
field added to the news types survives a merge with no code naming it."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

from nst_tui.tui.messages import NewsReady
from nst_tui.tui.news import CellNews, JobNews, NewsBox, merged
from nst_tui.tui.pace import Pace


def rows(*iterations: int) -> list[tuple[int, dict[str, float]]]:
    return [(i, {"total": float(i)}) for i in iterations]


def test_two_news_merge_with_every_row_and_every_field() -> None:
    older = JobNews(
        {0: CellNews(rows(1, 2), 2, "old 0"), 1: CellNews(rows(1), 1, "old 1")},
        completed=3,
        total=8,
        rate=1.5,
        tflop_s=0.25,
        of_peak=0.5,
        gpu_memory=1024,
    )
    newer = JobNews(
        {0: CellNews(rows(3), 3, None, "finished"), 2: CellNews(rows(1), 1)},
        completed=6,
        rate=2.5,
    )
    both = merged(older, newer)
    assert sorted(both.cells) == [0, 1, 2]
    assert both.cells[0] == CellNews(rows(1, 2, 3), 3, "old 0", "finished")
    assert both.cells[1] == older.cells[1] and both.cells[2] == newer.cells[2]
    # Newer's where it said something; older's where it left the default.
    assert (both.completed, both.total, both.rate) == (6, 8, 2.5)
    assert (both.tflop_s, both.of_peak, both.gpu_memory) == (0.25, 0.5, 1024)
    # Neither side changed: a dropped message could not have lost anything either.
    assert older.cells[0].rows == rows(1, 2) and newer.cells[0].rows == rows(3)


@dataclass
class RicherCell(CellNews):
    """The cell's news with fields no code in nst_tui names."""

    warnings: list[str] = field(default_factory=list)
    peak_bytes: int | None = None
    stage: str = ""


@dataclass
class RicherJob(JobNews):
    device_temperature: float | None = None
    notes: dict[str, str] = field(default_factory=dict)


def test_a_new_field_survives_a_merge_without_code_listing_it() -> None:
    older = RicherJob(
        {0: RicherCell(rows(1), 1, warnings=["slow"], peak_bytes=7, stage="scale 1")},
        device_temperature=61.0,
        notes={"a": "1"},
    )
    newer = RicherJob({0: RicherCell(rows(2), 2, warnings=["hot"])}, notes={"b": "2"})
    both = merged(older, newer)
    assert isinstance(both, RicherJob) and isinstance(both.cells[0], RicherCell)
    cell = both.cells[0]
    assert [i for i, _ in cell.rows] == [1, 2] and cell.warnings == ["slow", "hot"]
    assert (cell.peak_bytes, cell.stage) == (7, "scale 1")  # newer said nothing new
    assert both.device_temperature == 61.0 and both.notes == {"a": "1", "b": "2"}
    # Every field the types declare went through the one merge.
    names = {f.name for f in dataclasses.fields(RicherCell)}
    assert {"rows", "iteration", "preview", "status", "warnings", "peak_bytes"} <= names


def test_the_box_hands_everything_over_once_and_keeps_the_counts() -> None:
    box = NewsBox(Pace())
    assert box.take() is None
    box.put(JobNews({0: CellNews(rows(1), 1)}, completed=1, total=4, rate=2.0))
    box.put(JobNews({0: CellNews(preview="p")}))  # a preview alone: no count
    news = box.take()
    assert news is not None and news.cells[0] == CellNews(rows(1), 1, "p")
    assert (news.completed, news.total, news.rate) == (1, 4, 2.0)
    assert box.take() is None  # nothing new: a later message finds nothing
    box.put(JobNews({0: CellNews(preview="q")}))
    later = box.take()
    assert later is not None and (later.completed, later.total) == (1, 4)  # kept


def test_a_message_only_says_that_news_waits() -> None:
    box = NewsBox(Pace())
    older, newer = NewsReady(1, box), NewsReady(1, box)
    assert older.can_replace(newer) and newer.can_replace(older)
    assert not older.can_replace(NewsReady(2, NewsBox(Pace())))
    assert [f.name for f in dataclasses.fields(NewsReady)] == ["job_id", "box"]


def test_rows_put_from_two_threads_all_arrive_in_each_threads_order() -> None:
    box = NewsBox(Pace())
    taken: list[JobNews] = []

    def put(cell: int) -> None:
        for i in range(1, 201):
            box.put(JobNews({cell: CellNews(rows(i), i)}))
            if i % 50 == 0 and (news := box.take()) is not None:
                taken.append(news)

    threads = [threading.Thread(target=put, args=(c,)) for c in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if (news := box.take()) is not None:
        taken.append(news)
    for cell in (0, 1):
        got = [i for n in taken if cell in n.cells for i, _ in n.cells[cell].rows]
        assert got == list(range(1, 201))
