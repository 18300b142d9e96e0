"""Issue #24's bad input, refused at once with one line (or taken as meant): an empty or
job-level [sweep], relative paths in what a run or a preset records, scales too small,
hints that do not work, :name: emoji, 16-bit and float images, compare --out."""

from __future__ import annotations

import json
import os
import re
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_single
from PIL import Image

from nst_tui import presets
from nst_tui.cli import main
from nst_tui.config import MAX_SIZE, Config
from nst_tui.engine.images import check_image, load_image
from nst_tui.errors import ConfigError, ImageError, RunError
from nst_tui.job.plan import expand
from nst_tui.preflight import check_inputs

TINY = {
    "content_image": "builtin:chelsea.png",
    "style_image": "builtin:swirls.png",
    "size": 32,
    "iterations": 2,
    "sav_freq": 1,
    "backbone": "vgg16-caffe",
    "device": "cpu",
}


def tiny(**changes: object) -> Config:
    return Config.from_dict({**TINY, **changes})


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---- 1: [sweep] ----------------------------------------------------------------------


def test_an_empty_sweep_table_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("size = 32\n\n[sweep]\n")
    with pytest.raises(ConfigError, match="sweep: is empty"):
        presets.load(str(path))
    assert main(["run", "--preset", str(path)]) == 2
    assert "sweep: is empty" in one_line(capsys.readouterr().err)
    # No table at all is a single run, as before.
    (tmp_path / "single.toml").write_text("size = 32\n")
    assert presets.load(str(tmp_path / "single.toml")).sweep == {}


@pytest.mark.parametrize(
    ("field", "values"),
    [("executor", '["local", "ray"]'), ("ray_address", '["auto", "127.0.0.1:6379"]')],
)
def test_a_sweep_over_the_executor_is_refused(tmp_path: Path, capsys, field, values) -> None:
    path = tmp_path / "x.toml"
    path.write_text(f"size = 32\n\n[sweep]\n{field} = {values}\n")
    with pytest.raises(ConfigError, match=f"sweep.{field}: {field} is the job's setting, not"):
        presets.load(str(path))
    assert main(["run", "--preset", str(path)]) == 2
    assert "is the job's setting, not a cell's" in one_line(capsys.readouterr().err)
    # A table built elsewhere (the dashboard's sweep editor) is refused alike.
    with pytest.raises(ConfigError, match="not a cell's"):
        expand(Config(), {field: json.loads(values)})


# ---- 2: paths recorded absolute --------------------------------------------------------


def test_a_continued_run_records_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    Image.new("RGB", (40, 32), (200, 90, 30)).save(work / "photo.png")
    first = run_single(tiny(), out_root=Path("outputs"), label="first")
    assert not first.folder.is_absolute()  # as the dashboard's relative outputs folder
    # Continue (`n` in the history): init = run:outputs/..., a typed relative image.
    cfg = tiny(init=f"run:{first.folder}", content_image="photo.png")
    second = run_single(cfg, out_root=Path("outputs"), label="second")
    assert second.status == "finished"
    recorded = tomllib.loads((work / second.folder / "config.toml").read_text())
    assert recorded["init"] == "run:" + str(work / first.folder)
    assert recorded["content_image"] == str(work / "photo.png")
    # The record reproduces the run from anywhere.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    preset = str(work / second.folder / "config.toml")
    assert main(["run", "--preset", preset, "--set", "iterations=1"]) == 0, capsys.readouterr()


def test_a_saved_preset_records_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = Config(
        content_image="photo.png",
        style_images=("more/s.png", "builtin:swirls.png"),
        init="run:outputs/r1",
        backbone="w/v.pth",
    )
    path = presets.save(cfg, "mine", sweep={"style_image": ["a.png", "builtin:chelsea.png"]})
    saved = tomllib.loads(path.read_text())
    here = str(tmp_path)
    assert saved["content_image"] == os.path.join(here, "photo.png")
    assert saved["style_images"] == [os.path.join(here, "more", "s.png"), "builtin:swirls.png"]
    assert saved["init"] == "run:" + os.path.join(here, "outputs", "r1")
    assert saved["backbone"] == os.path.join(here, "w", "v.pth")
    assert saved["style_image"] == "builtin:swirls.png"
    assert saved["sweep"]["style_image"] == [os.path.join(here, "a.png"), "builtin:chelsea.png"]


# ---- 3, 4: scales and hints ----------------------------------------------------------


def strip(tmp_path: Path, w: int, h: int, name: str = "strip.png") -> str:
    path = tmp_path / name
    Image.new("RGB", (w, h), (120, 60, 30)).save(path)
    return str(path)


def hinted(message: str, setting: str) -> float:
    found = re.search(rf"use {setting} ([\d.]+) or more", message)
    assert found, message
    return float(found.group(1))


def test_scales_too_small_for_the_image_are_refused_before_torch(tmp_path: Path) -> None:
    wide = strip(tmp_path, 200, 40)
    cfg = tiny(content_image=wide, size=128, scales=[16, 128])
    with pytest.raises(ImageError) as info:
        check_inputs([cfg])
    message = str(info.value)
    assert message.startswith("scales: content_image")  # the field to fix, first
    assert "too narrow for scale 16 of [16, 128]" in message
    assert "use size" not in message
    smallest = int(re.search(r"make every scale (\d+) or more", message).group(1))
    check_inputs([cfg.replace(scales=[smallest, 128])])  # the hint works
    # A style image too narrow at the coarse scale (size * style_scale) is named too.
    cfg = tiny(style_image=wide, size=128, scales=[32, 128], style_scale=2.0)
    with pytest.raises(
        ImageError, match=r"^scales: style_image: .* \[32, 128\] \* style_scale 2 = 64"
    ):
        check_inputs([cfg])


def test_a_narrow_style_image_hints_a_style_scale_that_works(tmp_path: Path) -> None:
    style = strip(tmp_path, 100, 40)
    cfg = tiny(style_image=style, size=160, style_scale=0.1)
    with pytest.raises(ImageError) as info:
        check_inputs([cfg])
    message = str(info.value)
    assert "use size" not in message
    check_inputs([cfg.replace(style_scale=hinted(message, "style_scale"))])


def test_a_hint_is_a_value_that_works_or_none(tmp_path: Path) -> None:
    content = strip(tmp_path, 20000, 20)
    with pytest.raises(ImageError) as info:
        check_inputs([tiny(content_image=content)])
    message = str(info.value)
    assert "crop it" in message
    assert not re.search(r"size \d+ or more", message)  # 16000 is above the maximum
    narrow = strip(tmp_path, 1000, 20, "narrow.png")
    with pytest.raises(ImageError) as info:
        check_inputs([tiny(content_image=narrow)])
    size = int(hinted(str(info.value), "size"))
    assert size <= MAX_SIZE
    check_inputs([tiny(content_image=narrow, size=size)])


# ---- 5: :name: ---------------------------------------------------------------------------


def test_cli_messages_print_user_values_literally(tmp_path: Path, capsys) -> None:
    path = f"{tmp_path}/x:cat:y.png"
    assert main(["run", "--set", f"content_image={path!r}"]) == 2
    err = one_line(capsys.readouterr().err)
    assert f"{path}': no such file" in err and "\N{CAT FACE}" not in err
    assert main(["run", "--preset", ":smile:[bold]x"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "':smile:[bold]x': not found" in err


# ---- 6: images by their type -------------------------------------------------------------


@pytest.mark.parametrize("name", ["dark.png", "dark.tif"])
def test_a_dark_16_bit_image_stays_dark(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    values = np.full((32, 32), 199, np.uint16)
    values[:, 16:] = 0
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really 16-bit
    pixel = load_image(str(path)).getpixel((5, 5))
    assert pixel == (0, 0, 0)  # 199/65535 of white, not 199/255


def test_a_float_image_is_read_as_zero_to_one(tmp_path: Path) -> None:
    path = tmp_path / "half.tif"
    Image.fromarray(np.full((32, 32), 0.5, np.float32)).save(path)
    assert load_image(str(path)).getpixel((3, 3)) == (127, 127, 127)


def test_a_float_image_with_nan_is_refused_with_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nan.tif"
    values = np.full((32, 32), 0.5, np.float32)
    values[3, 4] = np.nan
    values[5, 6] = np.inf
    Image.fromarray(values).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning either
        for check in (check_image, load_image):
            with pytest.raises(ImageError, match="2 of its 1,024 pixels are not finite"):
                check(str(path), "content_image")
    assert main(["run", "--set", f"content_image={str(path)!r}", "--set", "size=32"]) == 2
    assert "not finite" in one_line(capsys.readouterr().err)


# ---- 7: compare --out ----------------------------------------------------------------


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Two run folders as a run leaves them, made here (no torch)."""
    out = []
    for name, alpha in (("a", 5.0), ("b", 50.0)):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 24), (10, 200, 90)).save(folder / "final.png")
        (folder / "config.toml").write_text(tiny(alpha=alpha).to_toml())
        (folder / "run.json").write_text(json.dumps({"status": "finished"}))
        out.append(folder)
    return out[0], out[1]


def test_compare_out_a_folder_writes_into_it(two_runs, tmp_path: Path, capsys) -> None:
    a, b = two_runs
    folder = tmp_path / "sheets"
    folder.mkdir()
    assert main(["compare", str(a), str(b), "--out", str(folder)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == folder / "compare-a-b.png" and written.is_file()
    assert not (tmp_path / "sheets-2").exists()


def test_compare_out_a_device_is_refused(two_runs, tmp_path: Path, capsys) -> None:
    a, b = two_runs
    fifo = tmp_path / "pipe"  # a device, as /dev/null is, made where a stray file can go
    os.mkfifo(fifo)
    assert main(["compare", str(a), str(b), "--out", str(fifo)]) == 2
    assert "not a regular file or a folder" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "pipe-2").exists()


def test_compare_out_honours_the_extension(two_runs, tmp_path: Path, capsys) -> None:
    a, b = two_runs
    for name, fmt in (("x.jpg", "JPEG"), ("x.webp", "WEBP"), ("x.PNG", "PNG")):
        assert main(["compare", str(a), str(b), "--out", str(tmp_path / name)]) == 0
        with Image.open(capsys.readouterr().out.strip()) as im:
            assert im.format == fmt
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "x.gifx")]) == 2
    assert "unknown image extension '.gifx'" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "x.gifx").exists()
    with pytest.raises(RunError):
        from nst_tui.compare import output_path

        output_path(a, b, tmp_path / "y.txt")
