"""The contact sheet: grid geometry, tiles where the layout says, labels, the animation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_tui import sheet
from nst_tui.records import write_gif


def solid(color: tuple[int, int, int], w: int = 32, h: int = 24) -> np.ndarray:
    return np.full((h, w, 3), color, dtype=np.uint8)


COLORS = [[(200, 0, 0), (0, 200, 0), (0, 0, 200)], [(200, 200, 0), (0, 200, 200), (200, 0, 200)]]


def test_tiles_land_in_their_grid_cells() -> None:
    images = [[solid(c) for c in row] for row in COLORS]
    im = sheet.render_sheet(images, ["adam", "lbfgs"], ["conv1_1", "conv2_1", "conv3_1"], "t")
    lay = sheet.layout([[(32, 24)] * 3] * 2, ["adam", "lbfgs"], ["conv1_1", "conv2_1", "conv3_1"],
                       "t")  # fmt: skip
    assert im.size == (lay.width, lay.height)
    assert (lay.rows, lay.cols) == (2, 3)
    # 32 px canvases are enlarged 4x, to the minimum tile.
    assert (lay.scale, lay.tile_w, lay.tile_h) == (4, 128, 96)
    px = im.load()
    for r, row in enumerate(COLORS):
        for c, color in enumerate(row):
            x0, y0, x1, y1 = lay.tile_box(r, c)
            assert x1 <= lay.width and y1 <= lay.height
            for x, y in [(x0, y0), (x1 - 1, y1 - 1), ((x0 + x1) // 2, (y0 + y1) // 2)]:
                assert px[x, y] == color, (r, c, x, y)
    # Tiles do not overlap: the gap between neighbours stays background.
    x0, y0, x1, _ = lay.tile_box(0, 0)
    assert px[x1, y0] == sheet.BACKGROUND


def test_labels_are_drawn_left_of_rows_and_above_columns() -> None:
    images = [[solid((0, 0, 0))]]
    bare = np.asarray(sheet.render_sheet(images, [""], [""]))
    labelled = np.asarray(sheet.render_sheet(images, ["lbfgs"], ["content conv2_1"]))
    lay = sheet.layout([[(32, 24)]], ["lbfgs"], ["content conv2_1"])
    x0, y0, x1, y1 = lay.tile_box(0, 0)
    assert (labelled[y0:y1, :x0] < 128).any(), "row label missing"
    assert (labelled[:y0, x0:x1] < 128).any(), "column label missing"
    # With no labels there is no room kept for them.
    assert bare.shape[0] < labelled.shape[0] and bare.shape[1] < labelled.shape[1]


def test_missing_images_leave_a_grey_tile() -> None:
    im = sheet.render_sheet([[solid((9, 9, 9)), None]], [""], ["a", "b"])
    lay = sheet.layout([[(32, 24), None]], [""], ["a", "b"])
    x0, y0, x1, y1 = lay.tile_box(0, 1)
    assert im.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)) == sheet.EMPTY


def test_label_count_must_match_the_grid() -> None:
    with pytest.raises(ValueError, match="2x1 grid"):
        sheet.layout([[(32, 32)], [(32, 32)]], ["one"], ["a"])


def test_wrap_keeps_every_line_within_the_width() -> None:
    fnt = sheet.font()
    text = "style conv1_1+conv2_1+conv3_1+conv4_1+conv5_1"
    lines = sheet.wrap(text, fnt, 90)
    assert len(lines) > 1
    assert all(fnt.getlength(line) <= 90 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_wrap_breaks_a_run_folder_name_at_its_dashes() -> None:
    fnt = sheet.font()
    name = "20261128-211716-quick: lr=0.06"
    width = int(fnt.getlength("20261128-211716-")) + 1
    assert sheet.wrap(name, fnt, width) == ["20261128-211716-", "quick: lr=0.06"]


def test_the_animation_plays_each_cell_and_holds_the_shorter_one(tmp_path: Path) -> None:
    # Cell (0, 0) saved 3 frames, cell (0, 1) only 1: the sheet has 3, the second held.
    long_gif, short_gif = tmp_path / "a.gif", tmp_path / "b.gif"
    write_gif(long_gif, (Image.fromarray(solid((v, 0, 0))) for v in (0, 120, 240)), 10)
    write_gif(short_gif, iter([Image.fromarray(solid((0, 0, 240)))]), 10)
    finals = [[solid((240, 0, 0)), solid((0, 0, 240))]]
    sh = sheet.sheet_for(finals, [""], ["a", "b"])
    out = tmp_path / "sheet.gif"
    n = sheet.write_sheet_gif(out, sh, [[long_gif, short_gif]], [[3, 1]], finals, 10)
    assert n == 3
    box_a, box_b = sh.layout.tile_box(0, 0), sh.layout.tile_box(0, 1)
    centre = [((b[0] + b[2]) // 2, (b[1] + b[3]) // 2) for b in (box_a, box_b)]
    with Image.open(out) as gif:
        assert gif.size == (sh.layout.width, sh.layout.height)
        reds, blues = [], []
        for i in range(gif.n_frames):
            gif.seek(i)
            frame = gif.convert("RGB")
            reds.append(frame.getpixel(centre[0])[0])
            blues.append(frame.getpixel(centre[1])[2])
    assert reds[0] < reds[1] < reds[2]
    assert all(b > 200 for b in blues)


def test_long_runs_are_sampled_to_the_frame_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheet, "MAX_GIF_FRAMES", 5)
    finals = [[solid((0, 0, 0))]]
    sh = sheet.sheet_for(finals, [""], ["a"])
    frames = iter([Image.fromarray(solid((v, v, v))) for v in range(0, 250, 10)])
    shown = [f.getpixel(sh.layout.tile_box(0, 0)[:2])[0] for f in
             sheet.animate(sh, [[frames]], [[25]], finals)]  # fmt: skip
    # Evenly spread over the 25 frames, first and last included.
    assert shown == [0, 60, 120, 180, 240]


def test_a_stopped_sweeps_sheet_says_so_and_where_each_cell_stopped(tmp_path: Path) -> None:
    from nst_tui.config import Config
    from nst_tui.engine.events import Finished
    from nst_tui.job.events import CellResult, JobResult
    from nst_tui.job.folder import job_sheet
    from nst_tui.job.plan import expand

    job = expand(Config(iterations=2500), {"seed": [0, 1, 2]})
    ends = [("finished", 2500), ("cancelled", 124), ("cancelled", 0)]

    def result(status: str, ends: list[tuple[str, int]]) -> JobResult:
        cells = tuple(
            CellResult(
                cell, tmp_path, Finished(s, "", n, 1.0, 1.0, {}, solid((90, 90, 90)), ran=n > 0)
            )
            for cell, (s, n) in zip(job.cells, ends, strict=True)
        )
        return JobResult(tmp_path, status, cells, 1.0, 0, 0.0, "cpu", "vgg16-caffe")

    finals = [[solid((90, 90, 90))] * 3]
    done = job_sheet(job, finals, result("finished", [("finished", 2500)] * 3))
    stopped = job_sheet(job, finals, result("cancelled", ends))
    assert "cancelled" not in " ".join(done.layout.title)
    assert "(cancelled, 1 of 3 cells finished)" in " ".join(stopped.layout.title)
    assert stopped.notes == {(0, 1): "cancelled at 124", (0, 2): "not run"}

    # The caption is drawn over the foot of its tile only, dark on the grey canvas.
    image = np.asarray(stopped.render(finals))
    for c, captioned in enumerate([False, True, True]):
        x0, _, x1, y1 = stopped.layout.tile_box(0, c)
        foot = image[y1 - 3, x0 + 1 : x1 - 1]
        assert bool((foot == sheet.INK).all(axis=-1).any()) is captioned, c
