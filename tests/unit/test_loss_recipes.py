"""The recipes the quality benchmark weighs, as config fields: the mean-noise and
content-noise inits, squared TV, W2 and histogram style terms, normalised losses and
Adam's second beta; each reaches the engine, and cells mixing them batch as they run
alone."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_alike_but_for_batch_rounding, tiny_config

from nst_tui.config import Config
from nst_tui.engine.optimize import CONTENT_NOISE_STD, MEAN_NOISE_STD, optimize
from nst_tui.engine.prepare import load_inputs, prepare
from nst_tui.errors import ConfigError

CPU = torch.device("cpu")


def test_the_recipe_fields_default_to_the_study() -> None:
    cfg = Config()
    assert (cfg.tv, cfg.style_stats, cfg.histogram) == ("l1", "gram", 0.0)
    assert (cfg.normalize_losses, cfg.adam_beta2, cfg.init) == (False, 0.999, "noise")


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"tv": "l3"}, "tv", "l1, l2"),
        ({"style_stats": "mean"}, "style_stats", "gram, w2"),
        ({"histogram": -1.0}, "histogram", "between 0"),
        ({"adam_beta2": 1.0}, "adam_beta2", "below 1"),
        ({"normalize_losses": "yes"}, "normalize_losses", "true or false"),
    ],
)
def test_bad_recipe_values_name_the_field(values: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config.from_dict(values)
    assert words in err.value.errors[key]


def test_mean_noise_is_faint_noise_around_the_contents_mean_colour() -> None:
    cfg = tiny_config(init="mean-noise")
    content, _, _ = load_inputs(cfg, CPU)
    canvas = prepare(cfg).canvas.detach()
    mean = content.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(canvas.mean(dim=(2, 3), keepdim=True), mean, atol=3e-3)
    assert float((canvas - mean).std()) == pytest.approx(MEAN_NOISE_STD, rel=0.15)
    assert torch.equal(canvas, prepare(cfg).canvas.detach())  # seeded


def test_content_noise_is_the_content_plus_noise_kept_in_range() -> None:
    cfg = tiny_config(init="content-noise")
    content, _, _ = load_inputs(cfg, CPU)
    canvas = prepare(cfg).canvas.detach()
    assert canvas.min() >= 0 and canvas.max() <= 1
    inside = (content > 0.3) & (content < 0.7)  # where clamping cannot have cut the noise
    assert float((canvas - content)[inside].std()) == pytest.approx(CONTENT_NOISE_STD, rel=0.15)
    assert not torch.equal(canvas, prepare(cfg.replace(seed=1)).canvas.detach())


def first_terms(cfg: Config) -> dict[str, float]:
    events: list = []
    prepared = prepare(cfg.replace(iterations=1, sav_freq=1))
    optimize(prepared.objective, prepared.canvases, [events.append])
    return events[-1].losses


def test_squared_tv_is_the_term_the_canvas_is_charged() -> None:
    l1 = first_terms(tiny_config(tv="l1", gamma=1.0))
    l2 = first_terms(tiny_config(tv="l2", gamma=1.0))
    # A uniform-noise canvas: E|a-b| = 1/3, E(a-b)^2 = 1/6 for independent U(0,1) pixels.
    assert l1["tv"] == pytest.approx(1 / 3, rel=0.05)
    assert l2["tv"] == pytest.approx(1 / 6, rel=0.05)


@pytest.mark.parametrize("fields", [{"style_stats": "w2"}, {"histogram": 1.0}])
def test_each_style_statistic_is_lowered_by_its_run(fields: dict) -> None:
    cfg = tiny_config(mode="style", iterations=30, sav_freq=30, normalize_losses=True, **fields)
    start = first_terms(cfg)["style"]
    prepared = prepare(cfg)
    (fin,) = optimize(prepared.objective, prepared.canvases, [lambda e: None])
    assert fin.status == "finished"
    assert fin.losses["style"] < 0.5 * start


def test_histogram_adds_to_the_style_term_at_each_style_layer() -> None:
    plain = first_terms(tiny_config())
    with_hist = first_terms(tiny_config(histogram=1.0))
    for key in plain:
        if key.startswith("style/"):
            assert with_hist[key] > plain[key]
    assert with_hist["content"] == pytest.approx(plain["content"], rel=1e-6)


def test_adams_second_beta_changes_the_path() -> None:
    def canvas(beta2: float) -> torch.Tensor:
        prepared = prepare(tiny_config(iterations=8, adam_beta2=beta2))
        optimize(prepared.objective, prepared.canvases, [lambda e: None])
        return prepared.canvas.detach()

    assert torch.equal(canvas(0.99), canvas(0.99))
    assert not torch.allclose(canvas(0.99), canvas(0.999), atol=1e-4)


def test_cells_mixing_the_recipes_batch_and_end_where_they_would_alone() -> None:
    base = tiny_config(iterations=6, sav_freq=3)
    cfgs = [
        base,
        base.replace(style_stats="w2", normalize_losses=True),
        base.replace(histogram=1e-3, tv="l2", init="content-noise"),
        base.replace(normalize_losses=True, tv="l2", init="mean-noise", adam_beta2=0.99),
        base.replace(style_stats="w2", histogram=1.0, normalize_losses=True, layer_type="relu"),
    ]
    prepared = prepare(cfgs)
    fins = optimize(prepared.objective, prepared.canvases, [lambda e: None] * len(cfgs))
    for cfg, fin in zip(cfgs, fins, strict=True):
        solo = prepare(cfg)
        (solo_fin,) = optimize(solo.objective, solo.canvases, [lambda e: None])
        assert fin.status == solo_fin.status == "finished"
        assert_alike_but_for_batch_rounding(fin.image, solo_fin.image)
        for key, value in solo_fin.losses.items():
            assert fin.losses[key] == pytest.approx(value, rel=1e-3, abs=1e-6), key


def test_carried_moments_start_the_next_scale_where_adam_left_off() -> None:
    from nst_tui.engine.optimize import Moments

    cfg = tiny_config(iterations=5, size=32)
    coarse = prepare(cfg.replace(size=26))
    moments = Moments()
    optimize(coarse.objective, coarse.canvases, [lambda e: None], moments=moments)
    assert moments.exp_avg is not None and moments.exp_avg.shape[-1] == 26
    assert int(moments.step) == 5
    fine = prepare(cfg, init_canvas=coarse.canvas.detach())
    carried = Moments(moments.step, moments.exp_avg, moments.exp_avg_sq)
    optimize(fine.objective, fine.canvases, [lambda e: None], moments=carried)
    assert int(carried.step) == 10  # the step count went on: no bias correction restart
    assert carried.exp_avg.shape[-1] == 32
    fresh = prepare(cfg, init_canvas=coarse.canvas.detach())
    optimize(fresh.objective, fresh.canvases, [lambda e: None])
    assert not torch.allclose(fine.canvas, fresh.canvas, atol=1e-4)


def test_a_multiscale_run_carries_moments_only_when_asked(monkeypatch) -> None:
    from nst_tui.engine import scales

    seen: list = []
    real = scales.optimize

    def spy(objective, canvases, emits, cancel=None, moments=None):
        seen.append(None if moments is None else moments.step)
        return real(objective, canvases, emits, cancel, moments)

    monkeypatch.setattr(scales, "optimize", spy)
    cfg = tiny_config(size=32, scales=[26, 32], iterations=3)
    for carry in (False, True):
        seen.clear()
        c = cfg.replace(carry_moments=carry)
        fin = scales.optimize_scales(prepare(scales.scale_configs(c)[0]), c, lambda e: None)
        assert fin.status == "finished" and fin.iterations_done == 6
        assert (seen[1] is not None and int(seen[1]) == 3) if carry else seen == [None, None]
