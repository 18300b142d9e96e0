"""fps stops at 50: a GIF's delays are whole 1/100 s and browsers slow 1/100 s to 1/10 s."""

from __future__ import annotations

import pytest

from nst_tui import presets
from nst_tui.config import MAX_FPS, Config
from nst_tui.errors import ConfigError
from nst_tui.records import gif_duration_ms


def test_fifty_fps_is_the_fastest_allowed_and_plays_at_20_ms() -> None:
    assert Config(fps=MAX_FPS).fps == 50
    assert gif_duration_ms(MAX_FPS) == 20


@pytest.mark.parametrize("fps", [51, 67, 100])
def test_above_fifty_is_refused_saying_why(fps: int) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_dict({"fps": fps})
    message = info.value.errors["fps"]
    assert "between 1 and 50" in message
    assert "1/100 s" in message and "browsers" in message
    assert "\n" not in str(info.value)


def test_no_shipped_preset_asks_for_more_than_fifty() -> None:
    for path in presets.all_paths():
        p = presets.load(str(path))
        assert p.config.fps <= MAX_FPS, path
        assert all(v <= MAX_FPS for v in p.sweep.get("fps", [])), path
