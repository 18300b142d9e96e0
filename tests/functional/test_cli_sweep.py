"""`nst-tui run --preset SWEEP` end to end: the sweep folder, --set, --json, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import TINY, assert_alike_but_for_batch_rounding
from PIL import Image

from nst_tui import presets
from nst_tui.cli import main
from nst_tui.job.folder import job_sheet
from nst_tui.job.plan import expand
from nst_tui.records import FILES

SWEEP_FILES = ["sheet.gif", "sheet.png", "sweep.json", "sweep.toml"]


def write_preset(folder: Path, sweep: str, **fields: object) -> Path:
    base = {**TINY, **fields}
    lines = [f"{k} = {json.dumps(v)}" for k, v in base.items()]
    path = folder / "grid.toml"
    path.write_text("\n".join([*lines, "[sweep]", sweep, ""]))
    return path


TWO_BY_TWO = 'optimizer = ["adam", "lbfgs"]\ncontent_layers = [[0], [2]]'


def last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_a_2x2_sweep_at_32px_writes_every_file(tmp_path: Path, capsys) -> None:
    preset = write_preset(tmp_path, TWO_BY_TWO)
    assert main(["run", "--preset", str(preset), "--out", str(tmp_path / "out")]) == 0
    folder = Path(last_line(capsys))
    assert folder.parent == tmp_path / "out" and folder.name.endswith("-grid")

    cells = ["00-adam-content-conv1_1", "01-adam-content-conv3_1",
             "02-lbfgs-content-conv1_1", "03-lbfgs-content-conv3_1"]  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == sorted([*cells, *SWEEP_FILES])
    for name in cells:
        assert sorted(p.name for p in (folder / name).iterdir()) == sorted(FILES), name

    summary = json.loads((folder / "sweep.json").read_text())
    assert summary["status"] == "finished"
    assert (summary["rows"], summary["cols"]) == (2, 2)
    assert summary["row_labels"] == ["adam", "lbfgs"]
    assert summary["col_labels"] == ["content conv1_1", "content conv3_1"]
    assert [c["status"] for c in summary["cells"]] == ["finished"] * 4
    assert summary["cell_iterations"] == 40 and summary["cell_it_per_s"] > 0
    # The Adam row shared one batch; each L-BFGS cell ran alone.
    assert [b["cells"] for b in summary["batches"]] == [[0, 1], [2], [3]]
    assert [b["batched"] for b in summary["batches"]] == [True, False, False]

    # The sheet is the sweep's grid (as sweep.toml plans it again): tiles hold the finals.
    again = presets.load(str(folder / "sweep.toml"))
    sweep = expand(again.config, again.sweep, "grid")
    finals = [[np.asarray(Image.open(folder / cells[2 * r + c] / "final.png")) for c in range(2)]
              for r in range(2)]  # fmt: skip
    lay = job_sheet(sweep, finals).layout
    assert (lay.rows, lay.cols) == (2, 2)
    with Image.open(folder / "sheet.png") as im:
        assert im.size == (lay.width, lay.height)
        sheet = np.asarray(im.convert("RGB"))
    for r in range(2):
        for c in range(2):
            x0, y0, x1, y1 = lay.tile_box(r, c)
            assert np.array_equal(sheet[y0 : y1 : lay.scale, x0 : x1 : lay.scale], finals[r][c])
    with Image.open(folder / "sheet.gif") as gif:
        assert gif.n_frames == 2  # iterations 5 and 10
        assert gif.size == Image.open(folder / "sheet.png").size


def test_a_cells_config_reproduces_it_alone(tmp_path: Path, capsys) -> None:
    preset = write_preset(tmp_path, "seed = [0, 1]\ncontent_layers = [[1], [3]]")
    assert main(["run", "--preset", str(preset), "--out", str(tmp_path / "sweep")]) == 0
    sweep = Path(last_line(capsys))
    cell = sweep / "03-seed-1-content-conv4_1"  # ran in a batch of four
    assert json.loads((cell / "run.json").read_text())["sweep"]["batch_size"] == 4
    assert main(["run", "--preset", str(cell / "config.toml"), "--out", str(tmp_path / "one")]) == 0
    alone = Path(last_line(capsys))
    a = np.asarray(Image.open(cell / "final.png")).astype(int)
    b = np.asarray(Image.open(alone / "final.png")).astype(int)
    assert_alike_but_for_batch_rounding(a, b)


def test_set_applies_to_every_cell_and_fixes_a_swept_field(tmp_path: Path, capsys) -> None:
    preset = write_preset(tmp_path, TWO_BY_TWO)
    args = ["run", "--preset", str(preset), "--set", "iterations=4",
            "--set", "content_layers=[1]", "--json", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(last_line(capsys))
    assert Path(summary["folder"]).is_dir()
    assert [a["field"] for a in summary["axes"]] == ["optimizer"]
    assert (summary["rows"], summary["cols"]) == (1, 2)
    for cell in summary["cells"]:
        assert cell["iterations_done"] == 4
        config = (Path(summary["folder"]) / cell["folder"] / "config.toml").read_text()
        assert "iterations = 4" in config and "content_layers = [1]" in config


def test_a_bad_sweep_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    preset = write_preset(tmp_path, "content_layers = [0, 1]")
    assert main(["run", "--preset", str(preset), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sweep.content_layers" in err and "[[0], [1]" in err
    assert not (tmp_path / "out").exists()
