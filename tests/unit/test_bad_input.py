"""Whatever is on disk: bad images, presets and weight files give one clear message.

Every bad file is made here, in the test's own folder. Odd but valid images
(grayscale, RGBA, palette, 16-bit, CMYK, EXIF-rotated, animated) load correctly.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst_tui import presets
from nst_tui.config import FIELD_NAMES, Config, parse_value, toml_value
from nst_tui.engine import images
from nst_tui.engine.backbones import load_backbone
from nst_tui.engine.images import MIN_EDGE, fit_canvas, load_image
from nst_tui.errors import BackboneError, ConfigError, ImageError, PresetError

# ---- images -------------------------------------------------------------------------


def noise_image(w: int = 64, h: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8))


def png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG header that claims a size but carries no pixels: a bomb costs nothing here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def truncated(path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    noise_image().save(buf, format=fmt)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def make_missing(path: Path) -> None:
    pass


def make_folder(path: Path) -> None:
    path.mkdir()


def make_empty(path: Path) -> None:
    path.write_bytes(b"")


def make_text(path: Path) -> None:
    path.write_text("a shopping list, not a picture\n")


def make_one_pixel(path: Path) -> None:
    Image.new("RGB", (1, 1), "red").save(path)


def make_thin(path: Path) -> None:
    Image.new("RGB", (400, MIN_EDGE - 1), "red").save(path)


def make_fifo(path: Path) -> None:
    os.mkfifo(path)  # opening it would block for ever


BAD_IMAGES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("missing", "a.jpg", make_missing, "no such file"),
    ("folder", "pics.jpg", make_folder, "is a folder, not an image file"),
    ("empty", "e.jpg", make_empty, "the file is empty (0 bytes)"),
    ("not an image", "list.jpg", make_text, "not an image Pillow can read (JPEG, PNG"),
    ("truncated jpeg", "t.jpg", lambda p: truncated(p, "JPEG"), "damaged or truncated image"),
    ("truncated png", "t.png", lambda p: truncated(p, "PNG"), "damaged or truncated image"),
    ("1x1", "dot.png", make_one_pixel, "1x1 pixels is too small; each side needs 16 or more"),
    ("thin", "thin.png", make_thin, "400x15 pixels is too small"),
    (
        "bomb past Pillow's limit",
        "bomb.png",
        lambda p: png_claiming(p, 100_000, 100_000),
        "10,000,000,000 pixels is more than the 64,000,000 allowed (a decompression bomb?)",
    ),
    (
        "bomb past ours",
        "bomb.png",
        lambda p: png_claiming(p, 9000, 8000),
        "9000x8000 is 72,000,000 pixels, more than the 64,000,000 allowed",
    ),
    ("fifo", "pipe.png", make_fifo, "not a regular file"),
]


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [(f, m, n) for _, f, m, n in BAD_IMAGES],
    ids=[case[0] for case in BAD_IMAGES],
)
def test_a_bad_image_names_the_file_and_the_fault(
    tmp_path: Path, name: str, make: Callable[[Path], None], needle: str
) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageError) as info:
        load_image(str(path), "style_image")
    message = str(info.value)
    assert message.startswith(f"style_image {str(path)!r}: "), message
    assert needle in message
    assert "\n" not in message


def test_an_unreadable_image_says_permission_denied(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "secret.png"
    noise_image().save(path)
    if os.geteuid() == 0:
        # root reads a file whatever its mode: make the read itself refuse.
        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(images.Image, "open", refuse)
    else:
        path.chmod(0)
    with pytest.raises(ImageError, match="not readable \\(permission denied\\)"):
        load_image(str(path), "content_image")


def test_odd_paths_are_errors_not_crashes(tmp_path: Path) -> None:
    for spec, needle in [
        ("x" * 5000 + ".png", "cannot open it (File name too long)"),
        ("bad\x00name.png", "no such file"),
        ("~nosuchuser-h6/a.png", "no such file"),
        ("builtin:../../etc/passwd", "no such built-in image"),
    ]:
        with pytest.raises(ImageError, match=needle.replace("(", "\\(").replace(")", "\\)")):
            load_image(spec, "content_image")


def test_an_image_too_narrow_for_the_size_suggests_one(tmp_path: Path) -> None:
    strip = Image.new("RGB", (1000, 20))
    with pytest.raises(ImageError) as info:
        fit_canvas(strip, 128, "content_image")
    assert str(info.value) == (
        "content_image: 1000x20 is too narrow for size 128 (its short side would be 3 px, "
        "16 needed); use size 775 or more, or crop it"
    )
    assert fit_canvas(strip, 775, "content_image").size == (775, 16)  # the least that fits
    with pytest.raises(ImageError):
        fit_canvas(strip, 774, "content_image")


def _pixel(im: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    return tuple(int(v) for v in im.getpixel(xy))  # type: ignore[union-attr]


def test_grayscale_palette_and_16_bit_become_rgb(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.new("L", (32, 32), 77).save(gray)
    assert _pixel(load_image(str(gray)), (5, 5)) == (77, 77, 77)

    palette = tmp_path / "palette.png"
    indexed = Image.new("P", (32, 32), 2)
    indexed.putpalette([0, 0, 0, 9, 9, 9, 200, 10, 30] + [0] * 759)
    indexed.save(palette)
    assert _pixel(load_image(str(palette)), (0, 0)) == (200, 10, 30)

    deep = tmp_path / "deep.png"
    values = np.zeros((32, 32), np.uint16)
    values[:, 16:] = 65535
    values[0, 0] = 32768
    Image.fromarray(values).save(deep)
    with Image.open(deep) as raw:
        assert raw.mode.startswith("I")  # really a 16-bit file
    im = load_image(str(deep))
    assert im.mode == "RGB"
    assert _pixel(im, (20, 5)) == (255, 255, 255) and _pixel(im, (5, 5)) == (0, 0, 0)
    assert _pixel(im, (0, 0)) == (127, 127, 127)  # the middle stays the middle


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    for x in range(16):
        for y in range(32):
            rgba.putpixel((x, y), (0, 0, 255, 0))  # fully transparent blue
    path = tmp_path / "rgba.png"
    rgba.save(path)
    im = load_image(str(path))
    assert _pixel(im, (2, 2)) == (255, 255, 255) and _pixel(im, (30, 2)) == (255, 0, 0)

    keyed = tmp_path / "keyed.gif"  # palette with a transparent index
    p = Image.new("P", (32, 32), 1)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.save(keyed, transparency=1)
    assert _pixel(load_image(str(keyed)), (3, 3)) == (255, 255, 255)


def test_cmyk_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(path, quality=95)  # pure red in ink
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    r, g, b = _pixel(load_image(str(path)), (16, 16))
    assert r > 240 and g < 20 and b < 20


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    # Stored 64 wide, left half red; orientation 6 says "turn 90° clockwise to show".
    stored = Image.new("RGB", (64, 32), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 32, 32))
    exif = stored.getexif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    im = load_image(str(path))
    assert im.size == (32, 64)
    top, bottom = _pixel(im, (16, 8)), _pixel(im, (16, 56))
    assert top[0] > 200 and top[2] < 60  # the left (red) side is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_an_animated_gif_uses_its_first_frame_and_says_so(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    notes: list[str] = []
    im = load_image(str(path), "style_image", notes.append)
    assert _pixel(im, (5, 5)) == (255, 0, 0)
    assert notes == [f"style_image {str(path)!r}: animated (3 frames); using its first frame"]


# ---- presets --------------------------------------------------------------------------

BAD_PRESETS: list[tuple[str, str | bytes, type[Exception], str]] = [
    ("toml", "iterations = [oops\n", PresetError, "invalid TOML (Invalid value (at line 1"),
    ("unknown key", "itrations = 5\n", ConfigError, "itrations: unknown field; did you mean"),
    ("wrong type", 'size = "big"\n', ConfigError, "size: must be a whole number, got 'big'"),
    ("range", "size = 99999\n", ConfigError, "size: must be between 16 and 8192, got 99999"),
    ("lr", "lr = -1.0\n", ConfigError, "lr: must be a number above 0"),
    ("layers", "content_layers = [0, 7]\n", ConfigError, "layer indices must be 0..4; got [7]"),
    (
        "empty layers",
        'mode = "content"\ncontent_layers = []\n',
        ConfigError,
        "content_layers: mode 'content' needs at least one content layer",
    ),
    (
        "sweep field",
        "[sweep]\nitrations = [1, 2]\n",
        ConfigError,
        "sweep.itrations: unknown field; did you mean 'iterations'?",
    ),
    ("sweep values", "[sweep]\nsize = 64\n", ConfigError, "sweep.size: must be a non-empty list"),
    ("sweep table", "sweep = 3\n", ConfigError, "sweep: must be a table"),
    ("description", "description = 3\n", ConfigError, "description: must be a string"),
    ("huge number", "alpha = 1" + "0" * 400 + "\n", ConfigError, "alpha: is far too large"),
    ("4300 digits", "seed = " + "9" * 5000 + "\n", PresetError, "invalid TOML (Exceeds the limit"),
    ("deep", "x = " + "[" * 3000 + "]" * 3000 + "\n", PresetError, "(nested too deeply)"),
    ("not utf-8", b'description = "\xff\xfe"\n', PresetError, "not UTF-8 text (byte 15)"),
    ("too big", "# " + "x" * (1 << 20) + "\n", PresetError, "bytes; a preset is at most 1,048,576"),
]


@pytest.mark.parametrize(
    ("text", "kind", "needle"),
    [case[1:] for case in BAD_PRESETS],
    ids=[case[0] for case in BAD_PRESETS],
)
def test_a_bad_preset_names_the_file_and_the_field(
    tmp_path: Path, text: str | bytes, kind: type[Exception], needle: str
) -> None:
    path = tmp_path / "mine.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(kind) as info:
        presets.load(str(path))
    message = str(info.value)
    assert str(path) in message and needle in message, message
    assert "\n" not in message


def test_preset_paths_that_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(PresetError, match="is a folder"):
        presets.load(str(tmp_path / "folder.toml"))
    with pytest.raises(PresetError, match="no such file"):
        presets.load(str(tmp_path / "nope.toml"))
    with pytest.raises(PresetError, match="cannot open it"):
        presets.load("x" * 5000)


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "windows.toml"
    path.write_bytes("\ufeffiterations = 9\n".encode())
    assert presets.load(str(path)).config.iterations == 9


def test_a_preset_with_missing_images_loads_and_the_run_names_them(tmp_path: Path) -> None:
    # Paths are checked when a run starts (where the CLI exits 2 and the dashboard
    # shows it): a preset naming a file on another machine must still open.
    path = tmp_path / "elsewhere.toml"
    path.write_text('content_image = "/data/on/another/box.jpg"\n')
    assert presets.load(str(path)).config.content_image == "/data/on/another/box.jpg"


def test_presets_are_data_only(tmp_path: Path) -> None:
    # TOML has no way to run code; a Python-looking value is only ever a string.
    path = tmp_path / "sly.toml"
    path.write_text("init = \"__import__('os').system('touch pwned')\"\n")
    # (a relative image path, so read from the preset's folder)
    assert presets.load(str(path)).config.init == str(
        tmp_path / "__import__('os').system('touch pwned')"
    )
    assert not (Path.cwd() / "pwned").exists()


# ---- the form's values --------------------------------------------------------------------


def test_parse_value_never_raises() -> None:
    for text in ("9" * 5000, "[" * 3000, "[/x]", "1e400", "\x00"):
        parse_value(text)  # a string or a number, never an exception
    assert parse_value("1e400") == float("inf")


# ---- weights --------------------------------------------------------------------------------


def tiny_state(n_convs: int = 13, first_out: int = 64) -> dict[str, torch.Tensor]:
    state = {}
    for i in range(n_convs):
        out = first_out if i == 0 else 1
        state[f"features.{i}.weight"] = torch.zeros(out, 3, 3, 3)
        state[f"features.{i}.bias"] = torch.zeros(out)
    return state


def test_bad_weight_files_name_the_file_and_what_is_expected(tmp_path: Path) -> None:
    cases: list[tuple[str, Callable[[Path], None], str]] = [
        ("folder.pth", lambda p: p.mkdir(), "is a folder; expected a torchvision VGG16 or VGG19"),
        ("empty.pth", lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
        ("text.pth", lambda p: p.write_text("weights"), "a text file ('weights'), not weights"),
        ("tensor.pth", lambda p: torch.save(torch.zeros(3), p), "holds a Tensor; expected"),
        ("twelve.pth", lambda p: torch.save(tiny_state(12), p), "12 conv layers; VGG16 has 13"),
        (
            "shape.pth",
            lambda p: torch.save(tiny_state(13, first_out=8), p),
            "conv 0 has shape (8, 3, 3, 3), expected (64, 3, 3, 3)",
        ),
    ]
    for name, make, needle in cases:
        path = tmp_path / name
        make(path)
        with pytest.raises(BackboneError) as info:
            load_backbone(str(path))
        assert name in str(info.value) and needle in str(info.value), str(info.value)


class Payload:
    """What a malicious weights file would unpickle."""


def test_pickled_objects_are_refused_without_advice_to_unpickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, path)
    with pytest.raises(BackboneError) as info:
        load_backbone(str(path))
    message = str(info.value)
    assert "holds Python objects" in message and "weights_only=False" not in message
    assert "\x1b" not in message and "\n" not in message


# ---- a property: random presets give a Config or the clean error ----------------------------

KEYS = st.one_of(
    st.sampled_from([*FIELD_NAMES, "description", "sweep"]),
    st.text(min_size=1, max_size=12),
)
SCALARS = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400).map(lambda n: n * (-1) ** (n % 2)),
    st.sampled_from([0, -1, 1, 4, 5, 2**63, 2**64, 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=24),
    st.sampled_from(["adam", "lbfgs", "noise", "content", "style", "conv", "relu", "cpu", "[/x]"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6), max_leaves=10)
TABLES = st.dictionaries(KEYS, VALUES, max_size=8)


def as_toml(table: dict[str, object], sweep: dict[str, object] | None) -> str:
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items() if k != "sweep"]
    if sweep is not None:
        lines.append("[sweep]")
        lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in sweep.items()]
    return "\n".join(lines) + "\n"


def load_or_clean_error(text: str) -> None:
    try:
        preset = presets.parse(text, Path("random.toml"))
    except (ConfigError, PresetError) as exc:
        assert str(exc), "an error says what is wrong"
        return
    assert isinstance(preset.config, Config)
    assert Config.from_dict(preset.config.to_dict()) == preset.config


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=TABLES, sweep=st.none() | TABLES)
def test_random_presets_load_or_fail_cleanly(table: dict, sweep: dict | None) -> None:
    load_or_clean_error(as_toml(table, sweep))


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=200),
    cut=st.integers(min_value=0, max_value=400),
    junk=st.text(max_size=8),
)
def test_damaged_preset_text_loads_or_fails_cleanly(text: str, cut: int, junk: str) -> None:
    load_or_clean_error(text)
    # A real preset with a bit of it overwritten: the usual kind of damage.
    good = Config(iterations=5, content_layers=(1, 2)).to_toml("a description")
    load_or_clean_error(good[:cut] + junk + good[cut + len(junk) :])
