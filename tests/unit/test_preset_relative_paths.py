"""Paths in a preset are read from the preset file's folder; paths typed with --set from
the working folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from nst_tui import presets
from nst_tui.cli import main


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder that is not the preset's."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write_preset(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.toml"
    path.write_text(text)
    return path


def test_relative_paths_are_read_from_the_preset_folder(tmp_path: Path, elsewhere: Path) -> None:
    folder = tmp_path / "exp"
    path = write_preset(
        folder,
        'content_image = "photo.png"\nstyle_image = "../art/s.png"\n'
        'style_images = ["x.png", "builtin:swirls.png"]\n'
        'init = "run:runs/r1"\nbackbone = "w/v.pth"\n'
        '[sweep]\ninit = ["start.png", "noise", "run:r2"]\n'
        'style_image = ["a.png", "builtin:chelsea.png"]\n',
    )
    cfg = presets.load(str(path)).config
    here = os.path.abspath(folder)
    assert cfg.content_image == os.path.join(here, "photo.png")
    assert cfg.style_image == os.path.join(os.path.abspath(tmp_path), "art", "s.png")
    assert cfg.style_images == (os.path.join(here, "x.png"), "builtin:swirls.png")
    assert cfg.init == "run:" + os.path.join(here, "runs", "r1")
    assert cfg.backbone == os.path.join(here, "w", "v.pth")
    sweep = presets.load(str(path)).sweep
    assert sweep["init"] == [os.path.join(here, "start.png"), "noise", "run:" + f"{here}/r2"]
    assert sweep["style_image"] == [os.path.join(here, "a.png"), "builtin:chelsea.png"]


def test_names_keywords_and_absolute_paths_are_untouched(tmp_path: Path, elsewhere: Path) -> None:
    path = write_preset(
        tmp_path / "exp",
        'content_image = "/data/photo.png"\nstyle_image = "~/art.png"\n'
        'init = "content"\nbackbone = "vgg16-caffe"\n',
    )
    cfg = presets.load(str(path)).config
    assert (cfg.content_image, cfg.style_image) == ("/data/photo.png", "~/art.png")
    assert (cfg.init, cfg.backbone) == ("content", "vgg16-caffe")
    assert presets.load("default").config.content_image.startswith("builtin:")


def test_cli_reads_preset_paths_from_its_folder_and_set_paths_from_here(
    tmp_path: Path, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exp"
    path = write_preset(folder, 'content_image = "photo.png"\nsize = 32\n')
    Image.new("RGB", (64, 64)).save(folder / "photo.png")
    (elsewhere / "w.pth").write_bytes(bytes(64))  # stops the run before torch loads
    # The image is found beside the preset; --backbone's relative path in the working folder.
    assert main(["run", "--preset", str(path), "--backbone", "w.pth"]) == 2
    assert "backbone 'w.pth': all zero bytes" in capsys.readouterr().err
    # A path typed with --set is the working folder's: photo.png is not there.
    assert main(["run", "--preset", str(path), "--set", "content_image=photo.png"]) == 2
    assert "content_image 'photo.png': no such file" in capsys.readouterr().err


def test_typed_paths_are_recorded_absolute(elsewhere: Path) -> None:
    cfg = presets.load("quick").config
    typed = {"content_image": "mine.png", "init": "run:out/r", "size": 64}
    cfg = cfg.replace(**typed).absolute()  # as run_job records it (Job.absolute)
    assert cfg.content_image == os.path.join(os.path.abspath(elsewhere), "mine.png")
    assert cfg.init == "run:" + os.path.join(os.path.abspath(elsewhere), "out", "r")
