"""Sweeps: grid expansion and labels, batching, batched == alone, cancel, the folder."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from conftest import IMAGES, assert_alike_but_for_batch_rounding, tiny_config

from nst_tui.config import Config
from nst_tui.engine.events import Finished, Frame, Progress
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import prepare
from nst_tui.errors import ConfigError, ImageError
from nst_tui.job.events import BatchStarted, CellEvent, IterationCount, JobFinished, JobStarted
from nst_tui.job.labels import value_label
from nst_tui.job.plan import expand, plan_batches, without
from nst_tui.job.run import run_job
from nst_tui.records import FILES

SHIPWRECK = IMAGES / "shipwreck.jpg"

# ---- grid and labels -------------------------------------------------------------


def test_one_field_is_a_row_in_the_order_given() -> None:
    sweep = expand(Config(), {"content_layers": [[0], [1], [2], [3], [4]]}, "layers")
    assert (sweep.rows, sweep.cols) == (1, 5)
    assert sweep.col_labels == tuple(f"content conv{i}_1" for i in range(1, 6))
    assert sweep.row_labels == ("",)
    assert [c.config.content_layers for c in sweep.cells] == [(0,), (1,), (2,), (3,), (4,)]
    assert [(c.row, c.col) for c in sweep.cells] == [(0, i) for i in range(5)]


def test_two_fields_make_a_table_rows_first() -> None:
    base = Config(iterations=40, init="content")
    sweep = expand(base, {"optimizer": ["adam", "lbfgs"], "content_layers": [[1], [1, 3, 4]]})
    assert (sweep.rows, sweep.cols) == (2, 2)
    assert sweep.row_labels == ("adam", "lbfgs")
    assert sweep.col_labels == ("content conv2_1", "content conv2_1+conv4_1+conv5_1")
    grid = sweep.grid()
    assert grid[1][0].label == "lbfgs, content conv2_1"
    assert grid[1][0].config.optimizer == "lbfgs"
    assert grid[1][0].config.content_layers == (1,)
    assert grid[0][1].values == {"optimizer": "adam", "content_layers": [1, 3, 4]}
    # Fields not swept keep the base's values in every cell.
    assert {c.config.iterations for c in sweep.cells} == {40}
    assert {c.config.init for c in sweep.cells} == {"content"}


def test_three_fields_combine_all_but_the_last_down_the_rows() -> None:
    sweep = expand(Config(), {"init": ["noise", "content"], "seed": [0, 1], "lr": [0.1, 0.01]})
    assert (sweep.rows, sweep.cols) == (4, 2)
    assert sweep.row_labels == (
        "init noise, seed 0",
        "init noise, seed 1",
        "init content, seed 0",
        "init content, seed 1",
    )
    assert sweep.col_labels == ("lr 0.1", "lr 0.01")
    assert sweep.cells[5].label == "init content, seed 0, lr 0.01"


def test_layer_names_drop_the_type_when_the_type_is_swept() -> None:
    sweep = expand(Config(), {"layer_type": ["conv", "relu"], "content_layers": [[0], [2]]})
    assert sweep.row_labels == ("conv", "relu")
    assert sweep.col_labels == ("content 1_1", "content 3_1")
    relu = expand(Config(layer_type="relu"), {"style_layers": [[0, 1]]})
    assert relu.col_labels == ("style relu1_1+relu2_1",)


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("optimizer", "lbfgs", "lbfgs"),
        ("mode", "style", "visualize style"),
        ("mode", "reconstruct", "reconstruct"),
        ("init", "/some/where/photo.jpg", "init photo"),
        ("style_image", "builtin:swirls.png", "style swirls"),
        ("alpha", 5.0, "alpha 5"),
        ("style_layers", [], "no style"),
        ("pooling", "avg", "avg pool"),
        ("original_colors", True, "original colors on"),
        ("init", "run:outputs/20260101-quick", "init run 20260101-quick"),
        ("normalize_style_weights", False, "normalize style weights off"),
        ("style_scale", 2.0, "style_scale 2"),
    ],
)
def test_value_labels_read_well(field: str, value: object, label: str) -> None:
    assert value_label(field, value) == label


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({}, "sweep", "empty"),
        ({"content_layer": [[0]]}, "sweep.content_layer", "did you mean 'content_layers'"),
        ({"content_layers": [0, 1, 2]}, "sweep.content_layers", "[[0], [1]"),
        ({"optimizer": ["adam", "sgd"]}, "sweep.optimizer", "'sgd'"),
        ({"seed": [1, 1]}, "sweep.seed", "twice"),
        ({"iterations": []}, "sweep.iterations", "non-empty"),
        ({"seed": list(range(300))}, "sweep", "at most"),
    ],
)
def test_bad_tables_name_the_field(table: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand(Config(), table)
    assert key in info.value.errors
    assert words in info.value.errors[key]


def test_a_bad_combination_names_its_cell() -> None:
    table = {"mode": ["content", "style"], "style_layers": [[0], []]}
    with pytest.raises(ConfigError) as info:
        expand(Config(), table)
    assert "sweep.style_layers" in info.value.errors
    assert "visualize style, no style" in str(info.value)


def test_set_fields_leave_the_table() -> None:
    table = {"optimizer": ["adam", "lbfgs"], "content_layers": [[0], [1]]}
    assert without(table, ["content_layers", "iterations"]) == {"optimizer": ["adam", "lbfgs"]}


# ---- batches ---------------------------------------------------------------------


def test_adam_cells_sharing_a_shape_batch_and_lbfgs_runs_alone() -> None:
    table = {"optimizer": ["adam", "lbfgs"], "size": [32, 64], "seed": [0, 1]}
    sweep = expand(Config(), table)
    batches = plan_batches(sweep)
    by_cells = {b.cells: b.batched for b in batches}
    assert by_cells == {(0, 1): True, (2, 3): True, (4,): False, (5,): False, (6,): False,
                        (7,): False}  # fmt: skip
    # Every cell runs exactly once.
    assert sorted(i for b in batches for i in b.cells) == list(range(8))


def test_batches_are_split_to_fit_the_pixel_budget() -> None:
    sweep = expand(Config(size=64), {"seed": list(range(5))})
    assert [b.cells for b in plan_batches(sweep, max_pixels=2 * 64 * 64)] == [
        (0, 1),
        (2, 3),
        (4,),
    ]


# ---- batched cells follow their single runs -----------------------------------------

# Float tolerance on [0, 1] canvases. Batched convolutions may add in another order
# than single ones (observed: up to ~1e-6 after 20 Adam steps on the CPU); Adam's
# per-element step is lr * m / sqrt(v), so such rounding stays at that scale rather
# than growing. 1e-4 is 100 times what is seen and still 40 times below one 8-bit level.
CANVAS_ATOL = 1e-4


def _alone(cfg: Config) -> tuple[Finished, torch.Tensor, list]:
    prepared = prepare(cfg)
    events: list = []
    finished = optimize(prepared.objective, prepared.canvases, [events.append])[0]
    return finished, prepared.canvas.detach(), events


def _batched(cfgs: list[Config]) -> tuple[list[Finished], list[torch.Tensor], list[list]]:
    prepared = prepare(cfgs)
    events: list[list] = [[] for _ in cfgs]
    finished = optimize(prepared.objective, prepared.canvases, [sink.append for sink in events])
    return finished, [c.detach() for c in prepared.canvases], events


def test_a_batched_adam_sweep_ends_where_each_cell_would_alone() -> None:
    # Cells differing in nearly everything a batch allows: layers, layer type, mode,
    # init, seed, weights, lr, iterations, sav_freq and the style image.
    base = tiny_config(iterations=16, sav_freq=4)
    cfgs = [
        base.replace(content_layers=[0]),
        base.replace(content_layers=[2], layer_type="relu", seed=1, alpha=20.0),
        base.replace(mode="style", style_layers=[1, 3], init="content", lr=0.03),
        base.replace(mode="content", content_layers=[4, 1], iterations=9, sav_freq=3),
        base.replace(init="style", style_image=str(SHIPWRECK), gamma=0.0),
    ]
    fins, canvases, events = _batched(cfgs)
    for cfg, fin, canvas, evs in zip(cfgs, fins, canvases, events, strict=True):
        solo, solo_canvas, solo_events = _alone(cfg)
        assert fin.status == solo.status == "finished"
        assert fin.iterations_done == cfg.iterations
        torch.testing.assert_close(canvas, solo_canvas, rtol=0, atol=CANVAS_ATOL)
        assert_alike_but_for_batch_rounding(fin.image, solo.image)
        assert list(fin.losses) == list(solo.losses)
        for key, value in solo.losses.items():
            assert fin.losses[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        # The same events at the same iterations, as the recorder needs them.
        kinds = [(type(e).__name__, getattr(e, "iteration", None)) for e in evs]
        assert kinds == [(type(e).__name__, getattr(e, "iteration", None)) for e in solo_events]


def test_a_diverging_cell_fails_alone_and_the_others_finish() -> None:
    base = tiny_config(iterations=6, sav_freq=2)
    blowup = base.replace(beta=1e30, style_weights=[1e30] * 5)  # weights overflow float32
    fins, canvases, _ = _batched([base, blowup, base.replace(seed=3)])
    assert [f.status for f in fins] == ["finished", "failed", "finished"]
    assert "overflow float32" in fins[1].reason
    _, solo_canvas, _ = _alone(base)
    torch.testing.assert_close(canvases[0], solo_canvas, rtol=0, atol=CANVAS_ATOL)


# ---- running a sweep ---------------------------------------------------------------


def test_cancel_stops_every_cell_and_keeps_their_records(tmp_path: Path) -> None:
    base = tiny_config(iterations=40, sav_freq=2)
    sweep = expand(base, {"optimizer": ["adam", "lbfgs"], "seed": [0, 1]}, "cancelled")
    cancel = threading.Event()

    def listen(event: object) -> None:
        progress = isinstance(event, CellEvent) and isinstance(event.event, Progress)
        if progress and event.event.iteration >= 4:
            cancel.set()

    result = run_job(sweep, out_root=tmp_path, listeners=[listen], cancel=cancel)
    assert result.status == "cancelled"
    statuses = [c.finished.status for c in result.cells]
    assert statuses == ["cancelled"] * 4
    # The Adam pair ran together up to the cancel; the L-BFGS cells never started: not
    # run, with no final image (their sheet tiles stay grey).
    assert [c.finished.iterations_done for c in result.cells] == [4, 4, 0, 0]
    for k, cell in enumerate(result.cells):
        record = json.loads((cell.folder / "run.json").read_text())
        assert record["status"] == "cancelled"
        assert record["reason"].startswith("not run: ") == (k >= 2)
        assert (cell.folder / "final.png").is_file() == (k < 2)
    summary = json.loads((result.folder / "sweep.json").read_text())
    assert summary["status"] == "cancelled"
    assert (result.folder / "sheet.png").is_file() and (result.folder / "sheet.gif").is_file()


def test_events_carry_the_cell_and_the_folder_holds_every_record(tmp_path: Path) -> None:
    base = tiny_config(iterations=6, sav_freq=3)
    sweep = expand(base, {"content_layers": [[0], [3]], "seed": [0, 1]}, "events")
    events: list = []
    result = run_job(sweep, out_root=tmp_path, label="events", listeners=[events.append])

    assert isinstance(events[-1], JobFinished) and events[-1].result == result
    started = next(e for e in events if isinstance(e, JobStarted))
    assert started.folder == result.folder and len(started.batches) == 1
    assert [e for e in events if isinstance(e, BatchStarted)] == [
        BatchStarted(0, (0, 1, 2, 3), True)
    ]
    for index in range(4):
        mine = [e.event for e in events if isinstance(e, CellEvent) and e.cell == index]
        assert [e.iteration for e in mine if isinstance(e, Progress)] == [3, 6]
        assert [e.iteration for e in mine if isinstance(e, Frame)] == [3, 6]
        assert isinstance(mine[-1], Finished) and mine[-1].status == "finished"

    names = sorted(p.name for p in result.folder.iterdir())
    cells = [f"0{i}-{label}" for i, label in enumerate(
        ["content-conv1_1-seed-0", "content-conv1_1-seed-1",
         "content-conv4_1-seed-0", "content-conv4_1-seed-1"])]  # fmt: skip
    assert names == sorted([*cells, "sheet.gif", "sheet.png", "sweep.json", "sweep.toml"])
    for name in cells:
        assert sorted(p.name for p in (result.folder / name).iterdir()) == sorted(FILES)

    summary = json.loads((result.folder / "sweep.json").read_text())
    assert summary["cell_iterations"] == result.cell_iterations == 24
    assert summary["cell_it_per_s"] > 0
    assert [c["folder"] for c in summary["cells"]] == cells
    assert summary["cells"][2]["values"] == {"content_layers": [3], "seed": 0}
    record = json.loads((result.folder / cells[1] / "run.json").read_text())
    assert record["label"] == "content conv1_1, seed 1"
    assert record["sweep"]["cell"] == 1 and record["sweep"]["batch_size"] == 4

    count = IterationCount(sweep)
    for event in events:
        count.update(event)
    assert count.completed == count.total == 24


def test_bad_input_raises_before_any_folder(tmp_path: Path) -> None:
    sweep = expand(tiny_config(), {"style_image": [str(SHIPWRECK), str(tmp_path / "nope.jpg")]})
    with pytest.raises(ImageError):
        run_job(sweep, out_root=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_shipped_sweep_preset_expands() -> None:
    from nst_tui import presets

    shapes = {}
    for path in presets.all_paths():
        preset = presets.load(str(path))
        if preset.sweep:
            sweep = expand(preset.config, preset.sweep, preset.name)
            shapes[preset.name] = (sweep.rows, sweep.cols)
    assert shapes == {
        "sweep-content-init-adam-vs-lbfgs": (2, 5),
        "sweep-content-layers-adam": (1, 5),
        "sweep-content-layers-lbfgs": (1, 5),
        "sweep-conv-vs-relu": (2, 5),
        "sweep-style-init": (1, 5),
        "sweep-visualize-both": (5, 5),
        "sweep-visualize-content": (1, 7),
        "sweep-visualize-style": (1, 11),
    }
