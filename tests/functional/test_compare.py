"""`nst-tui compare RUN_A RUN_B` end to end on two tiny runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_single as run
from conftest import tiny_config
from PIL import Image

from nst_tui.cli import main
from nst_tui.compare import label, labels


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("runs")
    base = tiny_config(iterations=5, sav_freq=5)
    a = run(base, out_root=out, label="a").folder
    b = run(base.replace(alpha=50.0, original_colors=True), out_root=out, label="b").folder
    return a, b


def test_compare_writes_both_final_images_side_by_side(
    two_runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    a, b = two_runs
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(a), str(b)]) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == tmp_path / f"compare-{a.name}-{b.name}.png"
    sheet = np.asarray(Image.open(written).convert("RGB"))
    finals = [np.asarray(Image.open(f / "final.png").convert("RGB")) for f in (a, b)]
    # Each 32x24 final is enlarged by a whole factor (4, to reach 128 px) and pasted whole.
    for final in finals:
        big = final.repeat(4, axis=0).repeat(4, axis=1)
        assert _contains(sheet, big)
    assert sheet.shape[1] > 2 * 128
    # Never overwritten: a second comparison gets a suffix.
    assert main(["compare", str(a), str(b)]) == 0
    again = Path(capsys.readouterr().out.strip())
    assert again == tmp_path / f"compare-{a.name}-{b.name}-2.png" and written.is_file()


def test_labels_name_the_differing_parameters(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    assert label("a", {"alpha": 5.0, "original_colors": False}) == (
        "a: alpha=5.0, original_colors=false"
    )
    assert labels(a, b) == (  # in Config's order, the form's: Images before Loss
        f"{a.name}: original_colors=false, alpha=5.0",
        f"{b.name}: original_colors=true, alpha=50.0",
    )
    assert labels(a, a) == (f"{a.name}: same config", f"{a.name}: same config")


def test_compare_writes_where_told(two_runs: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    a, b = two_runs
    out = tmp_path / "deep" / "ab.png"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert Path(capsys.readouterr().out.strip()) == out and out.is_file()


def test_a_folder_that_is_not_a_run_is_a_one_line_error(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    a, _ = two_runs
    assert main(["compare", str(a), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "is not a run folder" in err and "final.png" in err
    assert main(["compare", str(tmp_path / "nope"), str(a)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("compare-*.png"))


def _contains(sheet: np.ndarray, tile: np.ndarray) -> bool:
    h, w, _ = tile.shape
    for y in range(sheet.shape[0] - h + 1):
        for x in np.flatnonzero((sheet[y, : sheet.shape[1] - w + 1] == tile[0, 0]).all(1)):
            if np.array_equal(sheet[y : y + h, x : x + w], tile):
                return True
    return False
