"""Issue 7, next part: multi-scale runs, several style images blended, an EMA of the
canvas."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch
from conftest import STARRY, TUBINGEN, assert_alike_but_for_batch_rounding, tiny_config
from conftest import run_single as run
from PIL import Image

from nst_tui.config import Config
from nst_tui.engine.events import Frame, Progress
from nst_tui.engine.losses import gram
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import load_extra_styles, prepare, upsample
from nst_tui.engine.scales import scale_configs
from nst_tui.errors import ConfigError, ImageError
from nst_tui.job.plan import expand, plan_batches
from nst_tui.job.run import run_job
from nst_tui.records import read_run

CPU = torch.device("cpu")

# ---- config ------------------------------------------------------------------------


def test_new_fields_default_to_todays_behaviour_and_round_trip_through_toml() -> None:
    cfg = Config()
    assert (cfg.scales, cfg.style_images, cfg.style_blend, cfg.ema) == ((), (), (), 0.0)
    changed = cfg.replace(
        style_images=["a.jpg", "b c.png"], style_blend=[2, 1, 1], ema=0.9, scales=[32, 64, 128]
    )
    assert changed.style_blend == (2.0, 1.0, 1.0)
    assert Config.from_dict(tomllib.loads(changed.to_toml())) == changed
    assert set(changed.differences()) == {"style_images", "style_blend", "ema", "scales"}


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"ema": 1.0}, "ema", "below 1"),
        ({"ema": -0.1}, "ema", "at least 0"),
        ({"ema": "x"}, "ema", "must be a number"),
        ({"style_images": "a.jpg"}, "style_images", "must be a list"),
        ({"style_images": [1]}, "style_images", "image paths"),
        ({"style_images": [" "]}, "style_images", "one is empty"),
        ({"style_blend": [1, 1]}, "style_blend", "one weight per style (1"),
        ({"style_images": ["a"], "style_blend": [1]}, "style_blend", "(2: style_image"),
        ({"style_images": ["a"], "style_blend": [0, 0]}, "style_blend", "not all 0"),
        ({"style_images": ["a"], "style_blend": [1, -1]}, "style_blend", "0 or more"),
        ({"style_blend": ["a"]}, "style_blend", "list of numbers"),
        ({"scales": [8, 128]}, "scales", "between 16 and 8192"),
        ({"scales": [64, 32, 128]}, "scales", "must go up"),
        ({"scales": [64, 64, 128]}, "scales", "must go up"),
        ({"scales": [32, 64]}, "scales", "must end at size (128)"),
        ({"scales": [32.5, 128]}, "scales", "whole numbers"),
    ],
)
def test_bad_values_name_the_field(values: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Config.from_dict(values)
    assert words in exc.value.errors[key]


# ---- style blend -------------------------------------------------------------------


def test_a_missing_extra_style_is_an_image_error_naming_the_field() -> None:
    with pytest.raises(ImageError, match="style_images"):
        prepare(tiny_config(style_images=["/no/such/style.png"]))


def test_extra_styles_are_sized_like_the_style_image() -> None:
    cfg = tiny_config(style_images=[str(TUBINGEN)], style_scale=1.5)
    (extra,) = load_extra_styles(cfg, CPU)
    assert max(extra.shape[-2:]) == 48


def test_blend_weights_one_and_zero_give_the_single_styles_targets() -> None:
    single = prepare(tiny_config()).objective.cells[0].style_targets
    blended = (
        prepare(tiny_config(style_images=[str(TUBINGEN)], style_blend=[1, 0]))
        .objective.cells[0]
        .style_targets
    )
    only_second = (
        prepare(tiny_config(style_images=[str(TUBINGEN)], style_blend=[0, 3]))
        .objective.cells[0]
        .style_targets
    )
    tubingen = prepare(tiny_config(style_image=str(TUBINGEN))).objective.cells[0].style_targets
    for i in single:
        assert torch.equal(blended[i], single[i])
        torch.testing.assert_close(only_second[i], tubingen[i], rtol=1e-6, atol=0)
        assert not torch.allclose(single[i], tubingen[i], rtol=1e-2)


def test_equal_blend_is_the_mean_of_the_styles_grams() -> None:
    cfg = tiny_config(style_images=[str(TUBINGEN)])
    prepared = prepare(cfg)
    half = prepare(cfg.replace(style_blend=[0.5, 0.5])).objective.cells[0].style_targets
    starry = prepare(tiny_config(style_image=str(STARRY))).objective.cells[0].style_targets
    tubingen = prepare(tiny_config(style_image=str(TUBINGEN))).objective.cells[0].style_targets
    extractor = prepared.objective.extractor
    (tub_image,) = load_extra_styles(cfg, CPU)
    with torch.no_grad():
        direct = gram(extractor(tub_image)[2])
    torch.testing.assert_close(direct, tubingen[2], rtol=1e-6, atol=0)
    for i in starry:
        mean = (starry[i] + tubingen[i]) / 2
        targets = prepared.objective.cells[0].style_targets
        torch.testing.assert_close(targets[i], mean, rtol=1e-5, atol=0)
        torch.testing.assert_close(half[i], mean, rtol=1e-5, atol=0)


# ---- EMA ---------------------------------------------------------------------------


def _run(cfg: Config) -> tuple[list[Frame], object]:
    prepared = prepare(cfg)
    frames: list[Frame] = []
    (fin,) = optimize(
        prepared.objective,
        prepared.canvases,
        [lambda e: frames.append(e) if isinstance(e, Frame) else None],
    )
    return frames, fin


def test_ema_shows_the_running_average_and_leaves_the_losses_alone() -> None:
    cfg = tiny_config(iterations=4, sav_freq=1, lr=0.1)
    plain_frames, plain = _run(cfg)
    ema = 0.5
    ema_frames, smoothed = _run(cfg.replace(ema=ema))
    assert smoothed.losses == plain.losses  # the optimizer's path is the same
    # The average of canvases c0 (start), c1.. as frames show them: recompute it from
    # the plain run's frames (each the canvas after a step) and the start.
    start = prepare(cfg).canvas.detach()[0].permute(1, 2, 0).numpy() * 255
    avg = start.astype(np.float64)
    for plain_frame, ema_frame in zip(plain_frames, ema_frames, strict=True):
        avg = ema * avg + (1 - ema) * plain_frame.image.astype(np.float64)
        # frames are uint8 roundings of the canvas: the recomputed mean is within 1.5
        assert np.abs(ema_frame.image.astype(np.float64) - avg).max() <= 1.5
    assert np.abs(ema_frames[-1].image.astype(int) - plain_frames[-1].image.astype(int)).max() > 5
    assert np.array_equal(smoothed.image, ema_frames[-1].image)


def test_ema_runs_the_same_in_a_batch_and_with_lbfgs() -> None:
    cfg = tiny_config(iterations=4, sav_freq=2, ema=0.8)
    prepared = prepare([cfg, cfg.replace(seed=7, lr=0.1)])
    batched, _ = optimize(prepared.objective, prepared.canvases, [lambda e: None] * 2)
    _, solo = _run(cfg)
    assert_alike_but_for_batch_rounding(batched.image, solo.image)
    _, lbfgs = _run(cfg.replace(optimizer="lbfgs"))
    _, lbfgs_plain = _run(cfg.replace(optimizer="lbfgs", ema=0.0))
    assert lbfgs.status == "finished" and lbfgs.losses == lbfgs_plain.losses
    assert not np.array_equal(lbfgs.image, lbfgs_plain.image)


# ---- multi-scale -------------------------------------------------------------------


def test_prepare_starts_from_a_given_canvas_resized_to_its_own() -> None:
    gen = torch.Generator().manual_seed(3)
    coarse = torch.rand(1, 3, 12, 16, generator=gen)
    prepared = prepare(tiny_config(), init_canvas=coarse)  # 32 px: 24 x 32
    assert prepared.canvas.shape == (1, 3, 24, 32)
    torch.testing.assert_close(prepared.canvas.detach(), upsample(coarse, (24, 32)))
    # a 2x bilinear upsample keeps the mean colour
    assert prepared.canvas.mean().item() == pytest.approx(coarse.mean().item(), abs=0.01)


def test_a_multi_scale_run_counts_iterations_across_scales_in_one_record(tmp_path) -> None:
    cfg = tiny_config(scales=[26, 32], iterations=4, sav_freq=2, lr=0.05)
    assert [c.size for c in scale_configs(cfg)] == [26, 32]
    heard: list = []
    result = run(cfg, out_root=tmp_path, listeners=[heard.append])
    progress = [e for e in heard if isinstance(e, Progress)]
    frames = [e for e in heard if isinstance(e, Frame)]
    assert [(p.iteration, p.total) for p in progress] == [(2, 8), (4, 8), (6, 8), (8, 8)]
    assert [f.image.shape for f in frames] == [(20, 26, 3)] * 2 + [(24, 32, 3)] * 2
    assert result.finished.status == "finished" and result.finished.iterations_done == 8
    assert result.finished.image.shape == (24, 32, 3)
    rows = (result.folder / "losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6", "8"]
    with Image.open(result.folder / "animation.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)
    saved = tomllib.loads((result.folder / "config.toml").read_text())
    assert saved["scales"] == [26, 32] and read_run(result.folder)["iterations_done"] == 8


def test_each_scale_starts_from_the_last_ones_canvas_upsampled(tmp_path) -> None:
    cfg = tiny_config(scales=[26, 32], iterations=2, sav_freq=1, lr=0.02)
    heard: list = []
    run(cfg, out_root=tmp_path, listeners=[heard.append])
    f = [e.image for e in heard if isinstance(e, Frame)]
    coarse = torch.from_numpy(f[1]).permute(2, 0, 1)[None].float() / 255
    expected = upsample(coarse, (24, 32))[0].permute(1, 2, 0).numpy() * 255
    fresh_noise = prepare(tiny_config()).canvas.detach()[0].permute(1, 2, 0).numpy() * 255
    # one Adam step at lr 0.02 moves a pixel by about 5 levels; a fresh start is far away
    assert np.abs(f[2] - expected).mean() < 8
    assert np.abs(f[2] - fresh_noise).mean() > 40


def test_a_sweep_runs_multi_scale_cells_alone_and_to_the_end(tmp_path) -> None:
    base = tiny_config(iterations=2, sav_freq=2)
    sweep = expand(base, {"scales": [[], [26, 32]]}, "scales")
    batches = plan_batches(sweep)
    assert [(b.cells, b.batched) for b in batches] == [((0,), False), ((1,), False)]
    result = run_job(sweep, out_root=tmp_path)
    assert [c.finished.status for c in result.cells] == ["finished", "finished"]
    assert [c.finished.iterations_done for c in result.cells] == [2, 4]


def test_the_form_shows_list_fields_as_toml_that_reads_back() -> None:
    from nst_tui.config import parse_value
    from nst_tui.tui.widgets.params_form import FIELDS, show_value

    kinds = {f.name: f.kind for f in FIELDS}
    assert kinds["scales"] == kinds["style_images"] == kinds["style_blend"] == "list"
    assert kinds["ema"] == "number"
    cfg = Config().replace(scales=[64, 128], style_images=['a "b".jpg'], style_blend=[0.25, 0.75])
    values = cfg.to_dict()
    for name in ("scales", "style_images", "style_blend"):
        assert parse_value(show_value(values[name])) == values[name]
    assert show_value([]) == "[]" and parse_value("[]") == []
    assert cfg.total_iterations == 2 * cfg.iterations
