"""A bad .pth backbone is refused with what is actually wrong with it, not torch's guess."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nst_tui.engine.backbones import load_backbone
from nst_tui.engine.weight_files import WeightFileError, check_weights_file
from nst_tui.errors import BackboneError


def vgg16_state() -> dict[str, torch.Tensor]:
    """A VGG16-shaped state dict of tiny zeros (only shapes are checked before use)."""
    shapes = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256), (256, 256)]
    shapes += [(512, 256), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    state = {}
    for i, (o, c) in enumerate(shapes):
        state[f"features.{i}.weight"] = torch.zeros(o, c, 3, 3)
        state[f"features.{i}.bias"] = torch.zeros(o)
    return state


def wrong_bias(p: Path) -> None:
    state = vgg16_state()
    state["features.2.bias"] = torch.zeros(7)
    torch.save(state, p)


def missing_bias(p: Path) -> None:
    state = vgg16_state()
    del state["features.2.bias"]
    torch.save(state, p)


def truncated(p: Path) -> None:
    torch.save(vgg16_state(), p)
    p.write_bytes(p.read_bytes()[:5000])


def plain_zip(p: Path) -> None:
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("notes.txt", "hello")


CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    # name, how to make it, what must be said, what must not
    ("random.pth", lambda p: p.write_bytes(bytes(range(7, 256)) * 16), "first bytes",
     "Python objects"),
    ("zeros.pth", lambda p: p.write_bytes(bytes(4096)), "all zero bytes", ".tar"),
    ("text.pth", lambda p: p.write_text("excellent weights\n"),
     "a text file ('excellent weights')", "(101)"),
    ("page.pth", lambda p: p.write_text("<!DOCTYPE html><html>Not found</html>"),
     "an HTML page", "Python objects"),
    ("lfs.pth", lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid x\n"),
     "Git LFS pointer", "Python objects"),
    ("empty.pth", lambda p: p.write_bytes(b""), "empty (0 bytes)", "readable"),
    ("wrongbias.pth", wrong_bias, "features.2.bias has shape (7,), expected (128,)",
     "no matching bias"),
    ("nobias.pth", missing_bias, "features.2.bias is missing", "shape"),
    ("cut.pth", truncated, "damaged or truncated zip archive", "Errno"),
    ("other.zip.pth", plain_zip, "not one torch.save wrote", "enforce"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make", "said", "not_said"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_file_gets_its_own_reason(
    tmp_path: Path, name: str, make: Callable[[Path], None], said: str, not_said: str
) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(BackboneError) as info:
        load_backbone(str(path))
    message = str(info.value)
    assert name in message and said in message and not_said not in message, message
    assert "\n" not in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_not_a_regular_file_and_is_not_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pth"
    os.mkfifo(fifo)
    with pytest.raises(BackboneError) as info:  # opening it would block forever
        load_backbone(str(fifo))
    assert "not a regular file" in str(info.value)
    assert "no such weights file" not in str(info.value)


def test_a_real_state_dict_passes_the_byte_check(tmp_path: Path) -> None:
    path = tmp_path / "ok.pth"
    torch.save(vgg16_state(), path)
    check_weights_file(path)
    assert load_backbone(str(path)).arch == "vgg16"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match="no such weights file"):
        check_weights_file(tmp_path / "nope.pth")
    with pytest.raises(WeightFileError, match="is a folder"):
        check_weights_file(tmp_path)
