"""Init from a run, original colours, style scale, width-normalised
style weights, and their batched sweeps."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_alike_but_for_batch_rounding, tiny_config
from PIL import Image
from torch import nn

from nst_tui.config import Config
from nst_tui.engine.accel import Accel
from nst_tui.engine.colors import keep_colors, rgb_to_yiq
from nst_tui.engine.losses import style_width_factor
from nst_tui.engine.objective import Objective, cell_targets
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import load_inputs, prepare
from nst_tui.engine.tensors import to_tensor
from nst_tui.errors import ConfigError, ImageError

CPU = torch.device("cpu")

# ---- config ------------------------------------------------------------------------


def test_new_fields_default_to_the_study_and_round_trip_through_toml() -> None:
    cfg = Config()
    assert (cfg.style_scale, cfg.normalize_style_weights, cfg.original_colors) == (
        1.0,
        False,
        False,
    )
    changed = cfg.replace(
        style_scale=2.5, normalize_style_weights=True, original_colors=True, init="run:out/a"
    )
    again = Config.from_dict(tomllib.loads(changed.to_toml()))
    assert again == changed
    assert set(changed.differences()) == {
        "style_scale",
        "normalize_style_weights",
        "original_colors",
        "init",
    }


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"style_scale": 0.05}, "style_scale", "between 0.1 and 4"),
        ({"style_scale": 4.5}, "style_scale", "between 0.1 and 4"),
        ({"style_scale": "big"}, "style_scale", "must be a number"),
        ({"original_colors": "yes"}, "original_colors", "true or false"),
        ({"normalize_style_weights": 1}, "normalize_style_weights", "true or false"),
        ({"init": "run:  "}, "init", "needs a run folder"),
    ],
)
def test_bad_values_name_the_field(values: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Config.from_dict(values)
    assert words in exc.value.errors[key]


# ---- init = "run:FOLDER" -------------------------------------------------------------


def test_init_from_a_run_starts_from_its_final_png(tmp_path: Path) -> None:
    run = tmp_path / "earlier-run"
    run.mkdir()
    rng = np.random.default_rng(0)
    final = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)  # the 32 px canvas of tubingen
    Image.fromarray(final).save(run / "final.png")
    cfg = tiny_config(init=f"run:{run}")
    content, _, init = load_inputs(cfg, CPU)
    assert init is not None and content.shape == init.shape == (1, 3, 24, 32)
    torch.testing.assert_close(init, to_tensor(Image.fromarray(final)), rtol=0, atol=1e-6)
    assert torch.equal(prepare(cfg).canvas.detach(), init)


def test_init_from_a_folder_without_final_png_says_so(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"has no final\.png"):
        load_inputs(tiny_config(init=f"run:{tmp_path}"), CPU)
    with pytest.raises(ImageError, match="is not a folder"):
        load_inputs(tiny_config(init=f"run:{tmp_path / 'missing'}"), CPU)


# ---- original colours ------------------------------------------------------------------


def test_keep_colors_swaps_chroma_and_keeps_luminance() -> None:
    gen = torch.Generator().manual_seed(0)
    # Mid-grey canvases and gently coloured content: every result stays inside [0, 1].
    canvas = 0.35 + 0.3 * torch.rand(2, 3, 8, 8, generator=gen)
    content = 0.4 + 0.2 * torch.rand(1, 3, 8, 8, generator=gen)
    out = keep_colors(canvas, content)
    assert out.shape == canvas.shape and out.min() > 0 and out.max() < 1
    yiq_out, yiq_canvas, yiq_content = rgb_to_yiq(out), rgb_to_yiq(canvas), rgb_to_yiq(content)
    torch.testing.assert_close(yiq_out[:, :1], yiq_canvas[:, :1], rtol=0, atol=1e-5)
    torch.testing.assert_close(yiq_out[:, 1:], yiq_content[:, 1:].expand(2, -1, -1, -1), rtol=0,
                               atol=1e-5)  # fmt: skip
    assert (out - canvas).abs().max() > 0.05  # the colours did change


def test_a_run_with_original_colors_has_the_contents_chroma_and_the_canvass_luminance() -> None:
    cfg = tiny_config(iterations=5, sav_freq=5, original_colors=True)
    plain = cfg.replace(original_colors=False)
    prepared = prepare(cfg)
    frames: list = []
    fin = optimize(prepared.objective, prepared.canvases, [frames.append])[0]
    plain_prepared = prepare(plain)
    plain_fin = optimize(plain_prepared.objective, plain_prepared.canvases, [lambda e: None])[0]
    # The optimisation itself is the same: only what is shown and saved changes.
    assert fin.losses == plain_fin.losses
    assert np.array_equal(plain_fin.image, (prepared.canvas.detach()[0].permute(1, 2, 0)
                                            .mul(255).round().byte().numpy()))  # fmt: skip
    out = rgb_to_yiq(to_tensor(Image.fromarray(fin.image)))
    canvas = rgb_to_yiq(prepared.canvas.detach())
    content = rgb_to_yiq(prepared.objective.cells[0].colors)
    swapped = keep_colors(prepared.canvas, prepared.objective.cells[0].colors)
    inside = ((swapped > 0) & (swapped < 1)).all(1)  # pixels not clipped to the RGB cube
    assert inside.float().mean() > 0.5
    tol = 1.5 / 255  # 8-bit rounding of each channel
    for got, want in ((out[:, :1], canvas[:, :1]), (out[:, 1:], content[:, 1:])):
        diff = (got - want).abs().amax(1)[inside]
        assert diff.max() < tol
    # ... and far from the plain run's chroma.
    plain_iq = rgb_to_yiq(to_tensor(Image.fromarray(plain_fin.image)))[:, 1:]
    assert (plain_iq - content[:, 1:]).abs().mean() > 10 * tol
    frame = [e for e in frames if type(e).__name__ == "Frame"][-1]
    assert np.array_equal(frame.image, fin.image)


# ---- style scale ---------------------------------------------------------------------------


@pytest.mark.parametrize(("scale", "long_edge"), [(1.0, 32), (0.85, 27), (2.0, 64), (1.3, 42)])
def test_style_scale_sets_the_style_images_long_edge(caffe, scale: float, long_edge: int) -> None:
    cfg = tiny_config(style_scale=scale)
    content, style, _ = load_inputs(cfg, CPU)
    assert content.shape[-1] == 32 and max(style.shape[-2:]) == long_edge
    prepared = prepare(cfg)
    feats = prepared.objective.extractor(style)
    assert max(feats[0].shape[-2:]) == long_edge  # conv1_1 sees the style at its own size
    assert max(feats[4].shape[-2:]) == long_edge // 16  # after four 2x2 poolings
    # Gram targets are C x C whatever the style's size, so scales mix in one batch.
    widths = {0: 64, 1: 128, 2: 256, 3: 512, 4: 512}
    assert {i: tuple(t.shape) for i, t in prepared.objective.cells[0].style_targets.items()} == {
        i: (1, c, c) for i, c in widths.items()
    }


def test_a_style_scale_too_small_for_the_network_is_an_image_error() -> None:
    with pytest.raises(ImageError, match="style_scale"):
        load_inputs(tiny_config(style_scale=0.25), CPU)  # 8 px: conv5_1 would see nothing


# ---- normalised style weights ----------------------------------------------------------------


class TwoWidths(nn.Module):
    """Two 'layers' of 64 and 256 channels seeing the same image through random 1x1
    projections: their channels carry alike statistics, only the widths differ."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = {0: torch.randn(64, 3, generator=gen), 1: torch.randn(256, 3, generator=gen)}

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        return {i: torch.einsum("oc,bchw->bohw", w, x) for i, w in self.w.items()}


def _layer_terms(normalize: bool) -> tuple[float, float]:
    cfg = Config(
        mode="style",
        style_layers=(0, 1),
        style_weights=(1.0,) * 5,
        normalize_style_weights=normalize,
    )
    gen = torch.Generator().manual_seed(1)
    style = torch.rand(1, 3, 16, 16, generator=gen)
    canvas = torch.rand(1, 3, 16, 16, generator=gen) * 0.5
    widths, accel = TwoWidths(), Accel()
    targets = cell_targets(widths, accel, cfg, style, style)  # type: ignore[arg-type]
    objective = Objective(widths, accel, [targets])  # type: ignore[arg-type]
    values = objective(canvas)[0][targets.columns()]
    terms = dict(zip(targets.term_names(), values, strict=True))
    return terms["style/conv1_1"].item(), terms["style/conv2_1"].item()


def test_normalized_style_weights_make_equal_weights_mean_alike_across_widths() -> None:
    narrow, wide = _layer_terms(normalize=False)
    assert narrow / wide > 8  # unnormalised, the 4x wider layer counts ~16x less
    narrow, wide = _layer_terms(normalize=True)
    assert 0.5 < narrow / wide < 2
    assert style_width_factor(64, True) == 1.0 and style_width_factor(512, False) == 1.0


def test_normalized_style_weights_scale_each_real_layer_by_its_width() -> None:
    cfg = tiny_config(iterations=1, sav_freq=1)
    plain = prepare(cfg).objective
    scaled = prepare(cfg.replace(normalize_style_weights=True)).objective
    for i, c in {0: 64, 1: 128, 2: 256, 3: 512, 4: 512}.items():
        assert scaled.term_weights("gram", i) == pytest.approx(
            plain.term_weights("gram", i) * (c / 64) ** 2, rel=1e-12
        )


# ---- batched sweeps ------------------------------------------------------------------------


def test_cells_with_the_new_fields_batch_and_end_where_they_would_alone(tmp_path: Path) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    # Not a flat image: on a flat canvas the gradient is ~0 in places and Adam's first
    # step (about lr * sign(gradient)) turns the rounding of a larger batch into whole steps.
    noise = np.random.default_rng(0).integers(40, 200, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(earlier / "final.png")
    base = tiny_config(iterations=6, sav_freq=3)
    cfgs = [
        base,
        base.replace(original_colors=True),
        base.replace(style_scale=2.0, normalize_style_weights=True),
        base.replace(init=f"run:{earlier}", original_colors=True, style_scale=0.85),
    ]
    prepared = prepare(cfgs)
    fins = optimize(prepared.objective, prepared.canvases, [lambda e: None] * len(cfgs))
    for cfg, fin in zip(cfgs, fins, strict=True):
        solo = prepare(cfg)
        solo_fin = optimize(solo.objective, solo.canvases, [lambda e: None])[0]
        assert fin.status == solo_fin.status == "finished"
        assert_alike_but_for_batch_rounding(fin.image, solo_fin.image)
        for key, value in solo_fin.losses.items():
            assert fin.losses[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
