"""The loop on a real 32-48 px pair: modes, init, both optimizers, cancel, divergence."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import tiny_config

from nst_tui.engine.events import Finished, Frame, Progress
from nst_tui.engine.optimize import optimize
from nst_tui.engine.prepare import load_inputs, prepare


def run(cfg, cancel_at: int | None = None):
    prepared = prepare(cfg)
    events = []
    cancel = threading.Event()

    def listen(event):
        events.append(event)
        if cancel_at is not None and isinstance(event, Progress) and event.iteration >= cancel_at:
            cancel.set()

    finished = optimize(prepared.objective, prepared.canvases, [listen], cancel)[0]
    return prepared, events, finished


def progress(events) -> list[Progress]:
    return [e for e in events if isinstance(e, Progress)]


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [
        ("content", {"content"}, {"style", "tv"}),
        ("style", {"style"}, {"content", "tv"}),
        ("both", {"content", "style"}, {"tv"}),
        ("reconstruct", {"content", "style", "tv"}, set()),
    ],
)
def test_each_mode_touches_only_its_terms(mode: str, present: set, absent: set) -> None:
    cfg = tiny_config(mode=mode, iterations=2, sav_freq=1, content_layers=[1], style_layers=[0, 2])
    prepared, events, _ = run(cfg)
    losses = progress(events)[0].losses
    for term in present:
        assert losses[term] > 0, term
    for term in absent:
        assert losses[term] == 0, term
    layers = {k.split("/")[0] for k in losses if "/" in k}
    assert layers == present - {"tv"}
    assert losses["total"] == pytest.approx(losses["content"] + losses["style"] + losses["tv"])
    # Visualizing content layer 1 never runs deeper than conv2_1.
    if mode == "content":
        assert prepared.objective.extractor.depth == 1


def test_per_layer_terms_sum_to_their_term() -> None:
    cfg = tiny_config(iterations=1, sav_freq=1, content_layers=[2, 3])
    _, events, _ = run(cfg)
    losses = progress(events)[0].losses
    assert losses["content"] == pytest.approx(losses["content/conv3_1"] + losses["content/conv4_1"])
    style_sum = sum(v for k, v in losses.items() if k.startswith("style/"))
    assert losses["style"] == pytest.approx(style_sum, rel=1e-5)


def test_noise_init_is_repeatable_per_seed() -> None:
    a = prepare(tiny_config(seed=3)).canvas
    b = prepare(tiny_config(seed=3)).canvas
    c = prepare(tiny_config(seed=4)).canvas
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_content_style_and_image_init() -> None:
    content = prepare(tiny_config(init="content"))
    photo, _, _ = load_inputs(tiny_config(init="content"), torch.device("cpu"))
    assert torch.equal(content.canvas.detach(), photo)
    style = prepare(tiny_config(init="style")).canvas
    from_file = prepare(tiny_config(init=str(tiny_config().style_image))).canvas
    assert style.shape == content.canvas.shape  # the style is resized to the canvas
    assert torch.equal(style, from_file)
    # Tübingen is 4:3, so a 32 px long edge gives a 24x32 canvas: the aspect ratio is kept.
    assert content.canvas.shape == (1, 3, 24, 32)


def test_seeded_runs_repeat_exactly() -> None:
    cfg = tiny_config(iterations=6)
    _, _, first = run(cfg)
    _, _, second = run(cfg)
    assert (first.image == second.image).all()


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.06), ("lbfgs", 1.0)])
def test_both_optimizers_lower_the_loss(optimizer: str, lr: float) -> None:
    cfg = tiny_config(size=48, iterations=30, sav_freq=5, optimizer=optimizer, lr=lr)
    _, events, finished = run(cfg)
    totals = [p.losses["total"] for p in progress(events)]
    assert finished.status == "finished"
    assert finished.iterations_done == 30
    assert totals[-1] < 0.5 * totals[0], totals


def test_lbfgs_iteration_is_one_evaluation() -> None:
    cfg = tiny_config(iterations=13, optimizer="lbfgs", lr=1.0)
    prepared = prepare(cfg)
    calls = []
    hook = prepared.objective.register_forward_hook(lambda *_: calls.append(1))
    finished = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    hook.remove()
    assert len(calls) == 13 == finished.iterations_done


def test_events_follow_sav_freq_and_the_last_iteration() -> None:
    cfg = tiny_config(iterations=12, sav_freq=5)
    _, events, finished = run(cfg)
    assert [p.iteration for p in progress(events)] == [5, 10, 12]
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.iteration for f in frames] == [5, 10, 12]
    assert frames[-1].image.shape == (24, 32, 3) and frames[-1].image.dtype.name == "uint8"
    assert isinstance(events[-1], Finished) and events[-1] is finished


def test_canvas_stays_a_valid_image() -> None:
    prepared, _, _ = run(tiny_config(iterations=5, lr=0.5))
    assert prepared.canvas.min() >= 0 and prepared.canvas.max() <= 1


def test_cancel_stops_within_an_iteration_and_keeps_frames() -> None:
    cfg = tiny_config(iterations=50, sav_freq=2)
    _, events, finished = run(cfg, cancel_at=6)
    assert finished.status == "cancelled"
    assert finished.iterations_done == 6  # set at iteration 6: the next step never starts
    assert [f.iteration for f in events if isinstance(f, Frame)] == [2, 4, 6]
    assert "cancelled" in finished.reason


def test_weights_that_overflow_at_once_are_named_not_called_a_divergence() -> None:
    # A style weight this large overflows float32 before any step: no lr would help.
    cfg = tiny_config(iterations=10, sav_freq=1, style_weights=[1e30] * 5)
    _, _events, finished = run(cfg)
    assert finished.status == "failed" and finished.iterations_done == 0  # no step counts
    assert finished.reason.startswith("the loss is not finite at the first iteration")
    assert "overflow float32; try smaller alpha, beta, gamma or style_weights" in finished.reason
    assert finished.image.shape == (24, 32, 3)


def test_nan_in_the_network_weights_is_named_at_the_first_iteration(caffe) -> None:
    from nst_tui.engine.objective import cell_targets

    cfg = tiny_config(iterations=10, sav_freq=5)
    prepared = prepare(cfg)
    conv = prepared.objective.extractor.blocks[0][0]
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = float("nan")
    # The targets are encoded by the broken network too, as prepare would have.
    content, style, _ = load_inputs(cfg, torch.device("cpu"))
    cell = cell_targets(prepared.objective.extractor, prepared.objective.accel, cfg, content, style)
    prepared.objective.cells[0].content_targets = cell.content_targets
    finished = optimize(prepared.objective, prepared.canvases, [lambda e: None])[0]
    assert finished.status == "failed" and finished.iterations_done == 0
    assert "the network weights or the input images hold NaN or infinite values" in finished.reason


def test_slow_steps_each_show_their_count_and_only_logged_ones_are_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # A 4096 px step takes minutes: between sav_freq's logged steps each one still says
    # where the run is (a Progress without a frame), and the loss log keeps its rows.
    from conftest import run_single

    from nst_tui.engine import optimize as loop

    monkeypatch.setattr(loop, "SLOW_STEP_S", 0.0)  # every step counts as slow
    cfg = tiny_config(iterations=6, sav_freq=3)
    _, events, finished = run(cfg)
    assert finished.status == "finished"
    assert [(e.iteration, e.logged) for e in progress(events)] == [
        (1, False), (2, False), (3, True), (4, False), (5, False), (6, True)
    ]  # fmt: skip
    assert [e.iteration for e in events if isinstance(e, Frame)] == [3, 6]
    assert all(set(e.losses) == set(progress(events)[-1].losses) for e in progress(events))
    folder = run_single(cfg, out_root=tmp_path).folder
    rows = (folder / "losses.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["3", "6"]


def test_fast_steps_wait_for_the_logged_ones() -> None:
    _, events, _ = run(tiny_config(iterations=6, sav_freq=3))
    assert [e.iteration for e in progress(events)] == [3, 6]
