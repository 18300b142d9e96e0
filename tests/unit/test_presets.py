"""Every shipped preset loads; lookup by name works from any folder; saving never clobbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from nst_tui import presets
from nst_tui.config import Config
from nst_tui.errors import PresetError

STUDY = [
    "default",
    "study",
    "quick",
    "noise-adam",
    "noise-lbfgs",
    "content-adam",
    "content-lbfgs",
    "style-adam",
    "relu-taps",
    "visualize-content",
    "visualize-style",
    "visualize-both",
]


def shipped() -> list[Path]:
    return sorted(presets.shipped_dir().glob("*.toml"))


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_every_shipped_preset_loads_with_a_description(path: Path) -> None:
    preset = presets.load(str(path))
    assert preset.description
    assert isinstance(preset.config, Config)


def test_the_studys_single_run_presets_are_there() -> None:
    names = {p.stem for p in shipped()}
    assert set(STUDY) <= names
    lbfgs = presets.load("noise-lbfgs").config
    assert lbfgs.optimizer == "lbfgs" and lbfgs.init == "noise"
    assert presets.load("content-lbfgs").config.init == "content"
    assert presets.load("style-adam").config.init == "style"
    assert presets.load("relu-taps").config.layer_type == "relu"
    vis = presets.load("visualize-content").config
    assert (vis.mode, vis.iterations, vis.fps, vis.sav_freq) == ("content", 700, 2, 5)
    assert presets.load("visualize-style").config.mode == "style"
    assert presets.load("visualize-both").config.mode == "both"


def test_found_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert presets.load("quick").path == presets.shipped_dir() / "quick.toml"


def test_a_local_presets_folder_comes_first(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "quick.toml").write_text('description = "mine"\niterations = 3\n')
    monkeypatch.chdir(tmp_path)
    assert presets.load("quick").config.iterations == 3


def test_save_round_trips_and_never_clobbers() -> None:
    cfg = Config().replace(iterations=42, optimizer="lbfgs")
    path = presets.save(cfg, "mine", "my experiment")
    loaded = presets.load("mine")
    assert loaded.config == cfg and loaded.description == "my experiment"
    with pytest.raises(PresetError, match="already exists"):
        presets.save(cfg, "mine")
    assert presets.save(cfg.replace(iterations=43), "mine", overwrite=True) == path
    with pytest.raises(PresetError, match="letters, digits"):
        presets.save(cfg, "../escape")
