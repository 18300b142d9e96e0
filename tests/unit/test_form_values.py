"""Numbers as the form shows them: short where possible, always read back exactly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from nst_tui.config import parse_value
from nst_tui.tui.widgets.params_form import show_float


def test_large_and_small_weights_are_shown_as_exponents() -> None:
    assert show_float(1e7) == "1e7"
    assert show_float(1e-5) == "1e-5"
    assert show_float(5.0) == "5.0" and show_float(0.06) == "0.06"
    assert show_float(0.003814697265625) == "0.003814697265625"  # %g would round it


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_reads_back_exactly(value: float) -> None:
    back = parse_value(show_float(value))
    assert float(back) == value and math.copysign(1, back) == math.copysign(1, value)
