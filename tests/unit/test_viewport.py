"""The viewer's arithmetic: which image pixel each cell shows, at fit, at 1:1 and panned,
with half blocks (a cell is 1x2 pixels) and with real pixels (a cell is the terminal's)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nst_tui.tui.viewport import MAX_SCALE, PAN_CELLS, Viewport

HALF = (1, 2)


def test_fit_shows_the_whole_image_centred() -> None:
    view = Viewport((512, 256), 100, 40, HALF).fitted()  # 100 x 80 screen pixels
    assert view.scale == 100 / 512
    assert view.box() == (0, 0, 512, 256)
    assert view.out_px() == (100, 50)
    assert view.offset_px == (0, 15)  # (80 - 50) / 2 pixel rows above: 7.5 cells
    assert view.pixel_at(0, 7, 1) == (0, 0)  # the image's corner: cell 7's lower pixel
    assert view.pixel_at(0, 7, 0) is None  # above it, the background
    assert view.readout() == "fit 20% · x 0-511 y 0-255 of 512×256"


def test_at_one_to_one_a_half_block_cell_is_two_image_pixels() -> None:
    view = Viewport((512, 512), 160, 45, HALF).fitted().zoomed_to(1.0)
    left, top, right, bottom = view.box()
    assert (right - left, bottom - top) == (160, 90)  # a pixel per column, two per row
    assert (left, top) == (176, 211)  # centred: (512 - 160) / 2, (512 - 90) / 2 rounded down
    for col, row in [(0, 0), (3, 2), (159, 44)]:
        assert view.pixel_at(col, row, 0) == (left + col, top + 2 * row)
        assert view.pixel_at(col, row, 1) == (left + col, top + 2 * row + 1)
    assert view.readout() == "1:1 · x 176-335 y 211-300 of 512×512"


def test_at_one_to_one_in_real_pixels_a_cell_is_the_terminal_s_cell() -> None:
    view = Viewport((4096, 4096), 160, 45, (9, 18)).fitted()
    assert view.out_px() == (810, 810)  # 45 rows of 18 pixels: the height decides
    one = view.zoomed_to(1.0)
    left, top, right, bottom = one.box()
    assert (right - left, bottom - top) == (1440, 810)
    assert one.pixel_at(0, 0) == (left, top)
    assert one.pixel_at(2, 1) == (left + 18, top + 18)
    assert one.pixel_at(2, 1, 17) == (left + 18, top + 35)


def test_arrows_pan_by_cells_and_stop_at_the_edges() -> None:
    view = Viewport((512, 512), 160, 45, HALF).fitted().zoomed_to(1.0)
    right = view.panned(1, 0)
    assert right.box()[0] == view.box()[0] + PAN_CELLS
    down = view.panned(0, 1)
    assert down.box()[1] == view.box()[1] + 2 * PAN_CELLS
    corner = view.panned(-1000, -1000)
    assert corner.box()[:2] == (0, 0) and corner.pixel_at(0, 0) == (0, 0)
    far = view.panned(1000, 1000)
    assert far.box()[2:] == (512, 512) and far.pixel_at(159, 44, 1) == (511, 511)
    assert view.panned(1, 0, far=True).box()[0] == view.box()[0] + 80  # half the view


def test_zoom_steps_from_fit_through_one_to_one_and_back() -> None:
    view = Viewport((2048, 2048), 160, 45, HALF).fitted()  # fit is 90/2048
    scales = []
    for _ in range(12):
        view = view.zoomed_in()
        scales.append(view.scale)
    assert 1.0 in scales and scales[-1] == MAX_SCALE
    for _ in range(12):
        view = view.zoomed_out()
    assert view.is_fit and view.box() == (0, 0, 2048, 2048)


def test_zooming_keeps_the_centre() -> None:
    view = Viewport((1000, 1000), 100, 50, HALF).fitted().zoomed_to(1.0).panned(3, 2)
    cx, cy = view.centre
    two = view.zoomed_to(2.0)
    assert abs(two.centre[0] - cx) <= 1 and abs(two.centre[1] - cy) <= 1
    assert two.readout().startswith("2:1")


def test_a_small_image_at_one_to_one_is_centred_and_fit_enlarges_it() -> None:
    view = Viewport((32, 32), 100, 40, HALF).fitted()
    assert view.scale == 2.5  # 80 rows of pixels / 32
    one = view.zoomed_to(1.0)
    assert one.box() == (0, 0, 32, 32) and one.out_px() == (32, 32)
    assert one.offset_px == (34, 24)
    assert one.pixel_at(34, 12, 0) == (0, 0) and one.pixel_at(33, 12, 0) is None


def test_resizing_keeps_fit_at_fit_and_the_centre_when_zoomed() -> None:
    view = Viewport((512, 512), 80, 20, HALF).fitted()
    assert view.resized(160, 45).is_fit
    one = view.zoomed_to(1.0).panned(2, 2)
    bigger = one.resized(120, 30)
    assert abs(bigger.centre[0] - one.centre[0]) <= 1


@given(
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    cols=st.integers(1, 300),
    rows=st.integers(1, 100),
    cell=st.sampled_from([HALF, (9, 18), (10, 20), (7, 15)]),
    moves=st.lists(st.sampled_from(["in", "out", "l", "r", "u", "d", "L", "D"]), max_size=12),
)
def test_whatever_the_moves_every_cell_shows_a_pixel_of_the_box(
    w: int, h: int, cols: int, rows: int, cell: tuple[int, int], moves: list[str]
) -> None:
    view = Viewport((w, h), cols, rows, cell).fitted()
    act = {
        "in": lambda v: v.zoomed_in(),
        "out": lambda v: v.zoomed_out(),
        "l": lambda v: v.panned(-1, 0),
        "r": lambda v: v.panned(1, 0),
        "u": lambda v: v.panned(0, -1),
        "d": lambda v: v.panned(0, 1),
        "L": lambda v: v.panned(-1, 0, far=True),
        "D": lambda v: v.panned(0, 1, far=True),
    }
    for move in moves:
        view = act[move](view)
    left, top, right, bottom = view.box()
    assert 0 <= left < right <= w and 0 <= top < bottom <= h
    ow, oh = view.out_px()
    assert ow <= cols * cell[0] and oh <= rows * cell[1]
    for col, row in [(0, 0), (cols - 1, rows - 1), (cols // 2, rows // 2)]:
        pixel = view.pixel_at(col, row)
        if pixel is not None:
            assert left <= pixel[0] < right and top <= pixel[1] < bottom
