"""The memory plan's arithmetic (nst_tui/memory.py, torch-free), the budget's parsing, the
batches it splits, and its agreement with the engine's own tiles and work counts."""

from __future__ import annotations

import pytest
import torch
from conftest import STARRY, TUBINGEN, tiny_config

from nst_tui import memory
from nst_tui.config import Config
from nst_tui.errors import ConfigError
from nst_tui.job.plan import expand, plan_batches
from nst_tui.memory import (
    ADAM_VECTORS,
    LBFGS_VECTORS,
    Device,
    Net,
    axis_windows,
    batch_fits,
    canvas_shape,
    plan,
)
from nst_tui.sizes import GiB, MiB, budget_problem, parse_budget, parse_size, show_bytes

CPU = Device("cpu", free=20 * GiB, used=40 * MiB)  # a fresh process, torch not loaded yet
PHOTO = (384, 288)  # tubingen.jpg's width and height
PAINTING = (384, 240)  # starry_night.jpg's


def cfg(**changes: object) -> Config:
    return tiny_config(**changes)


def peak(config: Config, device: Device = CPU) -> int:
    return plan(config, PHOTO, device, [PAINTING]).last.untiled.peak


# ---- budgets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6GiB", 6 * GiB),
        ("6 GiB", 6 * GiB),
        ("6gib", 6 * GiB),
        ("512MiB", 512 * MiB),
        ("1.5GiB", int(1.5 * GiB)),
        ("6GB", 6 * 10**9),
        ("100kB", 100_000),
        ("2048 B", 2048),
        (" 1TiB ", 1 << 40),
    ],
)
def test_sizes_in_binary_and_decimal_units(text: str, value: int) -> None:
    assert parse_size(text) == value
    assert parse_budget(text) == value


def test_auto_is_no_number() -> None:
    assert parse_budget("auto") is None
    assert parse_budget(" AUTO ") is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("6 XB", "'6 XB' is not a size: use B, KiB, MiB, GiB, TiB"),
        ("6G", "'6G' is not a size: use B, KiB, MiB, GiB, TiB"),
        ("6", "'6' has no unit: use B, KiB, MiB, GiB, TiB"),
        ("GiB", "'GiB' is not a size: a number and a unit"),
        ("-1GiB", "'-1GiB' is not a size"),
        ("0.1B", "it must be 1 B or more"),
        ("", "'' is not a size"),
    ],
)
def test_a_budget_that_is_not_a_size_says_what_is(text: str, says: str) -> None:
    message = budget_problem(text)
    assert says in message
    assert message.endswith("or auto (a safe share of what the device has free)")
    with pytest.raises(ConfigError, match="max_memory: "):
        cfg(max_memory=text)


def test_show_bytes_reads_in_binary_units() -> None:
    assert show_bytes(3.2 * GiB) == "3.2 GiB"
    assert show_bytes(512 * MiB) == "512 MiB"
    assert show_bytes(100) == "100 B"


# ---- the arithmetic --------------------------------------------------------------------


@pytest.mark.parametrize(("w", "h"), [(384, 288), (451, 300), (300, 451), (997, 17), (64, 64)])
@pytest.mark.parametrize("size", [16, 128, 333, 4096, 8192])
def test_canvas_shape_rounds_as_the_engine_fits_images(w: int, h: int, size: int) -> None:
    from PIL import Image

    from nst_tui.engine.images import fit_long_edge

    fitted = fit_long_edge(Image.new("RGB", (w, h)), size).size
    assert canvas_shape(w, h, size) == (fitted[1], fitted[0])


def test_the_peak_grows_with_the_pixels() -> None:
    peaks = [peak(cfg(size=s, max_memory="1TiB")) for s in (128, 256, 512, 1024, 2048, 4096)]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)
    # Past the fixed costs (process, weights) the activations dominate: about 4x per
    # doubling of the edge from 2048 px on.
    assert 3.5 < peaks[5] / peaks[4] < 4


def test_bf16_needs_less_than_fp32() -> None:
    fp32 = plan(cfg(size=1024, precision="fp32"), PHOTO, CPU).last.untiled
    bf16 = plan(cfg(size=1024, precision="bf16"), PHOTO, CPU).last.untiled
    assert bf16.peak < fp32.peak
    # The network's maps in half the bytes; the taps and the losses stay float32.
    assert bf16.parts["activations"] < 0.8 * fp32.parts["activations"]
    # auto: bf16 where the device runs it fast (an AMX CPU, a GPU of capability 8.0+).
    amx = Device("cpu", 20 * GiB, 40 * MiB, bf16=True)
    assert (
        plan(cfg(size=1024, precision="auto"), PHOTO, amx).peak
        == plan(cfg(size=1024, precision="bf16"), PHOTO, amx).peak
    )
    assert plan(cfg(size=1024, precision="auto"), PHOTO, CPU).peak == fp32.peak


def test_the_optimizers_state_is_adams_moments_or_lbfgs_history() -> None:
    size = 1024
    h, w = canvas_shape(*PHOTO, size)
    canvas = 3 * h * w * 4
    adam = plan(cfg(size=size, optimizer="adam"), PHOTO, CPU).last.untiled
    lbfgs = plan(cfg(size=size, optimizer="lbfgs", history=100), PHOTO, CPU).last.untiled
    short = plan(cfg(size=size, optimizer="lbfgs", history=5), PHOTO, CPU).last.untiled
    assert adam.parts["optimizer"] == ADAM_VECTORS * canvas
    assert lbfgs.parts["optimizer"] == (2 * 100 + LBFGS_VECTORS) * canvas
    assert short.parts["optimizer"] == (2 * 5 + LBFGS_VECTORS) * canvas
    assert lbfgs.peak - short.peak == 2 * 95 * canvas
    assert adam.parts["activations"] == lbfgs.parts["activations"]


def test_deeper_taps_and_more_terms_cost_more() -> None:
    shallow = peak(cfg(size=1024, content_layers=[1], style_layers=[0, 1]))
    deep = peak(cfg(size=1024, content_layers=[3], style_layers=[0, 1, 2, 3, 4]))
    assert shallow < deep
    # w2 saves each style tap centred where the Gram saves the tap itself: the same bytes.
    assert peak(cfg(size=1024, style_stats="w2")) == peak(cfg(size=1024))
    assert peak(cfg(size=1024, histogram=1.0)) > peak(cfg(size=1024))
    # A relu tap's ReLU replaces the conv's output it reads: no more memory.
    assert peak(cfg(size=1024, layer_type="relu")) == peak(cfg(size=1024))
    assert peak(cfg(size=1024, ema=0.5)) > peak(cfg(size=1024))


def test_a_batch_of_canvases_costs_about_that_many_times_the_activations() -> None:
    one = plan(cfg(size=512), PHOTO, CPU).last.untiled
    four = plan([cfg(size=512)] * 4, PHOTO, CPU).last.untiled
    overhead = memory.STEP_OVERHEAD  # once per pass, however many canvases
    assert four.parts["activations"] - overhead == 4 * (one.parts["activations"] - overhead)
    assert four.parts["process"] == one.parts["process"]


def test_on_a_cpu_the_budget_is_the_whole_process() -> None:
    fresh = plan(cfg(), PHOTO, CPU).last.untiled
    assert fresh.parts["process"] == 40 * MiB + memory.TORCH_BYTES
    loaded = Device("cpu", 20 * GiB, 900 * MiB, torch_loaded=True, weights_loaded=True)
    warm = plan(cfg(), PHOTO, loaded).last.untiled
    assert warm.parts["process"] == 900 * MiB  # what it holds now: torch and all
    assert "weight file" not in warm.parts  # its weights are held already
    gpu = Device("cuda:0", 10 * GiB, 0, torch_loaded=True)
    assert plan(cfg(), PHOTO, gpu).last.untiled.parts["process"] == 0  # tensors only


def test_auto_is_a_share_of_what_is_free() -> None:
    assert CPU.auto_budget() == 40 * MiB + int(0.8 * 20 * GiB)
    gpu = Device("cuda:0", 10 * GiB, 0, torch_loaded=False)
    assert gpu.auto_budget() == int(0.9 * 10 * GiB) - memory.CUDA_CONTEXT_BYTES
    assert Device("cuda:0").auto_budget() is None  # free memory not known before torch


# ---- fitting the budget ----------------------------------------------------------------


def test_as_it_is_when_it_fits() -> None:
    p = plan(cfg(size=512, max_memory="8GiB"), PHOTO, CPU, [PAINTING])
    assert p.fits and not p.last.tiled
    assert p.verdict() == "fits"
    assert p.line().startswith("≈") and p.line().endswith("of 8.0 GiB budget on cpu · fits")


def test_the_largest_tile_whose_peak_fits() -> None:
    config = cfg(size=3072, max_memory="3GiB", precision="fp32")
    p = plan(config, PHOTO, CPU, [PAINTING])
    assert p.fits and p.last.tiled
    fit = p.last.fit
    usable = memory.HEADROOM * 3 * GiB  # the plan leaves room for its own error
    assert fit is not None and fit.peak <= usable < p.last.untiled.peak
    bigger = memory.fit_tiles_at(p.context, p.last, fit.tile + 16)
    assert bigger.peak > usable or (bigger.rows, bigger.cols) == (fit.rows, fit.cols)
    assert f"{fit.rows}×{fit.cols} tiles of {fit.tile} px" in p.line()


def test_memory_is_held_tightly_only_near_the_budget() -> None:
    # Where the plan's error matters (above TIGHT_SHARE of the budget, recomputing or in
    # tiles) the run holds its memory as the plan counts it; elsewhere glibc's reuse.
    roomy = plan(cfg(size=512, max_memory="8GiB"), PHOTO, CPU, [PAINTING])
    assert roomy.peak < memory.TIGHT_SHARE * 8 * GiB and not roomy.tight
    assert roomy.record()["allocator"] == "roomy"
    near = plan(cfg(size=512, max_memory=f"{roomy.peak * 1.5:.0f}B"), PHOTO, CPU, [PAINTING])
    assert near.verdict() == "fits" and near.tight and near.record()["allocator"] == "tight"
    tiled = plan(cfg(size=1024, tile=256, max_memory="64GiB"), PHOTO, CPU)
    assert tiled.peak < memory.TIGHT_SHARE * 64 * GiB and tiled.tight
    gpu = Device("cuda:0", 1 * GiB, 0, torch_loaded=True)
    assert not plan(cfg(size=512, max_memory="1GiB"), PHOTO, gpu).tight  # tensors: not malloc's
    assert not plan(cfg(size=512), PHOTO, Device("cpu")).tight  # no budget known


def test_a_forced_tile_is_planned_as_asked() -> None:
    p = plan(cfg(size=1024, tile=256, max_memory="64GiB"), PHOTO, CPU)
    assert p.last.fit is not None and p.last.fit.tile == 256
    assert (p.last.fit.rows, p.last.fit.cols) == (3, 4)


def test_nothing_fits_a_budget_below_the_smallest_tile() -> None:
    p = plan(cfg(size=512, max_memory="200MiB"), PHOTO, CPU, [PAINTING])
    assert not p.fits
    refusal = p.refusal()
    assert refusal.startswith("max_memory 200MiB (200 MiB budget on cpu): size 512 needs ")
    assert "even in tiles of 16 px" in refusal and "the process" in refusal
    need = memory.fit_tiles_at(p.context, p.last, 16).peak
    assert f", a budget of {show_bytes(need / memory.HEADROOM)} or more;" in refusal
    assert refusal.endswith("; lower size or raise max_memory")


def test_a_huge_size_with_a_tiny_budget_names_what_weighs() -> None:
    p = plan(cfg(size=8192, max_memory="1GiB", optimizer="lbfgs", history=100), PHOTO, CPU)
    assert not p.fits
    assert "the optimizer's state" in p.reason()
    assert p.remedy() == "lower history, use adam, lower size or raise max_memory"


def test_tiles_refused_for_the_histogram_say_so() -> None:
    from nst_tui.config import tiles_refused

    config = cfg(size=2048, max_memory="2GiB", histogram=1.0)
    p = plan(config, PHOTO, CPU, refused=tiles_refused(config))
    assert not p.fits and "cannot tile: the histogram term" in p.reason()


def test_multi_scale_tiles_only_the_scales_that_need_it() -> None:
    config = cfg(size=3072, scales=[256, 512, 3072], max_memory="3GiB", precision="fp32")
    p = plan(config, PHOTO, CPU, [PAINTING])
    assert [s.tiled for s in p.scales] == [False, False, True]
    assert p.verdict().endswith("(at 3072 px)")


def test_an_unknown_budget_is_not_refused() -> None:
    p = plan(cfg(size=8192), PHOTO, Device("cuda:0"))
    assert p.budget is None and p.fits
    assert "free memory not known yet" in p.line()


# ---- the engine's own figures -------------------------------------------------------------


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
@pytest.mark.parametrize(("length", "tile"), [(100, 32), (341, 64), (512, 128), (1000, 300)])
@pytest.mark.parametrize("taps", [(0,), (1, 3), (0, 1, 2, 3, 4)])
def test_the_tiles_arithmetic_is_the_engines(arch: str, length: int, tile: int, taps) -> None:
    from nst_tui.engine.tiles import axis_spans, backbone_fields

    engine = axis_spans(length, tile, backbone_fields(arch, taps))
    ours = axis_windows(length, tile, Net(arch, frozenset(taps)))
    assert [(s.start, s.stop, s.lo, s.hi) for s in engine] == ours


def test_the_layer_table_is_the_engines() -> None:
    from nst_tui.engine import backbones, packed

    assert memory.BLOCKS == backbones.BLOCKS
    assert memory.WIDTHS == backbones.WIDTHS
    assert memory.PACKED_SHAPES == packed.SHAPES_KEPT


def test_the_work_per_iteration_is_flops_count() -> None:
    from nst_tui.engine.flops import iteration_flops
    from nst_tui.engine.objective import conv_extractor
    from nst_tui.engine.prepare import get_backbone

    config = cfg(size=200)
    extractor, _ = conv_extractor(get_backbone(config.backbone), [config], torch.device("cpu"))
    h, w = canvas_shape(*PHOTO, 200)
    counted = iteration_flops(extractor, h, w, config.style_layers)
    assert plan(config, PHOTO, CPU).last.flops == pytest.approx(counted.total, rel=1e-12)


# ---- batches ------------------------------------------------------------------------


def test_a_sweep_is_batched_only_as_far_as_the_budget_allows() -> None:
    base = cfg(size=512, max_memory="2.5GiB", iterations=2)
    job = expand(base, {"content_layers": [[0], [1], [2], [3], [4]]})
    by_pixels = plan_batches(job, max_pixels=1 << 30)
    assert [b.cells for b in by_pixels] == [(0, 1, 2, 3, 4)]

    def fits(cfgs) -> bool:
        return batch_fits(cfgs, PHOTO, CPU, [PAINTING])

    batches = plan_batches(job, max_pixels=1 << 30, fits=fits)
    assert len(batches) > 1
    assert [i for b in batches for i in b.cells] == [0, 1, 2, 3, 4]
    for b in batches:
        assert fits([job.cells[i].config for i in b.cells])
    roomy = plan_batches(
        expand(base.replace(max_memory="64GiB"), {"content_layers": [[0], [1]]}),
        max_pixels=1 << 30,
        fits=fits,
    )
    assert [b.cells for b in roomy] == [(0, 1)]


def test_preflight_batches_from_the_images_headers() -> None:
    from nst_tui.preflight import batch_fits as preflight_fits

    fits = preflight_fits()
    small = cfg(content_image=str(TUBINGEN), style_image=str(STARRY), max_memory="64GiB")
    assert fits([small, small])
    assert not fits([small.replace(max_memory="300MiB", size=2048)] * 2)
